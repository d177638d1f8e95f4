//! The README must tell the truth about the things the code can check.

#[test]
fn readme_carries_the_knob_table_from_the_code() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table = katotune::profile::knobs::markdown_table();
    assert!(
        readme.contains(&table),
        "README's knob table is stale: paste `katotune profiles knobs`"
    );
}

#[test]
fn readme_exit_code_table_matches_src_exit_rs() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table: Vec<i32> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| exit code |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let code = l.trim_start_matches('|').split('|').next().unwrap().trim();
            code.parse()
                .unwrap_or_else(|_| panic!("README exit table row `{l}` has no code"))
        })
        .collect();
    let documented: Vec<i32> = katotune::exit::ALL.iter().map(|(_, code)| *code).collect();
    for (name, code) in katotune::exit::ALL {
        assert!(
            table.contains(code),
            "exit code {code} ({name}) missing from the README table"
        );
    }
    for code in &table {
        assert!(
            documented.contains(code),
            "the README lists exit code {code}, which src/exit.rs does not define"
        );
    }
    let exit_rs = std::fs::read_to_string("src/exit.rs").unwrap();
    let constants = exit_rs.matches("pub const ").count() - 1;
    assert_eq!(
        constants,
        documented.len(),
        "every constant in src/exit.rs is listed in exit::ALL"
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let ci = std::fs::read_to_string(".ci/run").unwrap();
    assert!(readme.contains("make test"));
    assert!(ci.lines().any(|l| l.trim() == "make test"));
}
