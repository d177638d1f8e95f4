//! The tar archive that carries a container's [`FileSpec`]s into it before it
//! starts (Docker's "put archive", extracted at `/`).

use crate::stack::plan::ContainerSpec;

/// A tar of every file of the container, paths relative to `/`. Docker creates
/// missing parent directories while extracting.
pub(super) fn archive(spec: &ContainerSpec) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for file in &spec.files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.contents.len() as u64);
        header.set_mode(file.mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        let path = file.path.trim_start_matches('/');
        builder.append_data(&mut header, path, file.contents.as_bytes())?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use super::archive;
    use crate::stack::plan::{ContainerSpec, FileSpec};

    #[test]
    fn archive_holds_each_file_relative_to_root_with_its_mode() {
        let spec = ContainerSpec {
            service: "ch".into(),
            name: "s-ch".into(),
            image: "img".into(),
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            secret_env: vec![],
            ports: vec![],
            health: None,
            mounts: vec![],
            files: vec![FileSpec {
                path: "/etc/init/init.sql".into(),
                contents: "CREATE TABLE t;".into(),
                mode: 0o644,
            }],
            depends_on: vec![],
            memory_bytes: None,
            labels: BTreeMap::new(),
            config_hash: "h".into(),
        };
        let bytes = archive(&spec).expect("in-memory tar");
        let mut tar = tar::Archive::new(bytes.as_slice());
        let mut entry = tar
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("ok");
        assert_eq!(
            entry.path().expect("path").to_str(),
            Some("etc/init/init.sql")
        );
        assert_eq!(entry.header().mode().expect("mode"), 0o644);
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("read");
        assert_eq!(text, "CREATE TABLE t;");
    }
}
