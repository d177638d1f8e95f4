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
fn readme_lists_every_documented_exit_code() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    use katotune::exit::*;
    for code in [
        OK,
        RUN_FAILED,
        BAD_INPUT,
        REGRESSION,
        STACK_FAILED,
        KB_MISMATCH,
        STORE_FAILED,
        KB_REFUSED,
        INTERRUPTED,
    ] {
        assert!(
            readme.contains(&format!("\n| {code} |")),
            "exit code {code} missing from the README"
        );
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let ci = std::fs::read_to_string(".ci/run").unwrap();
    assert!(readme.contains("make test"));
    assert!(ci.lines().any(|l| l.trim() == "make test"));
}
