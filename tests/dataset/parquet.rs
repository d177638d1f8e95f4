//! Parquet datasets: files written with the parquet crate's writer, read back.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use katotune::train::dataset::{Dataset, DatasetFormat, DatasetSpec};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::json;
use tempfile::TempDir;

use crate::{open, texts};

/// Writes a Hugging Face style file: `text` (nullable string) and `id`, in row groups.
fn write_parquet(path: &Path, groups: &[&[(Option<&str>, i64)]]) {
    let schema =
        parse_message_type("message schema { optional binary text (STRING); required int64 id; }")
            .unwrap();
    let props = Arc::new(WriterProperties::builder().build());
    let file = File::create(path).unwrap();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
    for group in groups {
        let mut rows = writer.next_row_group().unwrap();
        let texts: Vec<ByteArray> = group
            .iter()
            .filter_map(|(t, _)| t.map(ByteArray::from))
            .collect();
        let defined: Vec<i16> = group.iter().map(|(t, _)| i16::from(t.is_some())).collect();
        let ids: Vec<i64> = group.iter().map(|(_, id)| *id).collect();
        let mut column = rows.next_column().unwrap().unwrap();
        column
            .typed::<ByteArrayType>()
            .write_batch(&texts, Some(&defined), None)
            .unwrap();
        column.close().unwrap();
        let mut column = rows.next_column().unwrap().unwrap();
        column
            .typed::<Int64Type>()
            .write_batch(&ids, None, None)
            .unwrap();
        column.close().unwrap();
        rows.close().unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn parquet_file_reads_back_text_and_metadata() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("train-00000.parquet");
    write_parquet(
        &path,
        &[&[(Some("first"), 10), (None, 11)], &[(Some("third"), 12)]],
    );
    let rows: Vec<_> = open(&path, DatasetFormat::Auto).collect();
    assert_eq!(rows.len(), 3);
    let first = rows[0].as_ref().unwrap();
    assert_eq!((first.row, first.text.as_str()), (0, "first"));
    assert_eq!(first.metadata.get("id"), Some(&json!(10)));
    let null = rows[1].as_ref().unwrap_err();
    assert!(
        null.to_string()
            .contains("train-00000.parquet:row 2: field `text` is null"),
        "{null}"
    );
    let third = rows[2].as_ref().unwrap();
    assert_eq!((third.row, third.text.as_str()), (2, "third"));
}

#[test]
fn parquet_directory_numbers_rows_across_files_and_skips_row_groups() {
    let dir = TempDir::new().unwrap();
    write_parquet(
        &dir.path().join("part-1.parquet"),
        &[&[(Some("c"), 2), (Some("d"), 3)], &[(Some("e"), 4)]],
    );
    write_parquet(
        &dir.path().join("part-0.parquet"),
        &[&[(Some("a"), 0)], &[(Some("b"), 1)]],
    );
    let all = texts(open(dir.path(), DatasetFormat::Auto));
    let letters: Vec<_> = all.iter().map(|(r, t)| format!("{r}{t}")).collect();
    assert_eq!(letters, ["0a", "1b", "2c", "3d", "4e"]);
    for skip in 0..=6u64 {
        let mut dataset = open(dir.path(), DatasetFormat::Parquet);
        assert_eq!(dataset.skip_rows(skip).unwrap(), skip.min(5));
        let rest: Vec<u64> = texts(dataset).into_iter().map(|(r, _)| r).collect();
        assert_eq!(
            rest,
            (skip.min(5)..5).collect::<Vec<_>>(),
            "after skipping {skip}"
        );
    }
}

#[test]
fn parquet_without_the_text_column_is_refused_at_open() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.parquet");
    write_parquet(&path, &[&[(Some("x"), 1)]]);
    let spec = DatasetSpec {
        text_field: "content".into(),
        ..DatasetSpec::new(&path)
    };
    let message = Dataset::open(&spec).unwrap_err().to_string();
    assert!(
        message.contains("data.parquet has no column `content` (its columns: text, id)"),
        "{message}"
    );
}

fn split_texts(dir: &Path, split: &str) -> Vec<String> {
    let spec = DatasetSpec {
        split: split.into(),
        ..DatasetSpec::new(dir)
    };
    texts(Dataset::open(&spec).expect("split opens"))
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// A Hub-style folder: train in three shards (written out of order, index 10 after
/// index 2), plus test and validation.
fn hub_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    write_parquet(
        &dir.join("train-00010-of-00011.parquet"),
        &[&[(Some("train ten"), 3)]],
    );
    write_parquet(
        &dir.join("train-00002-of-00011.parquet"),
        &[&[(Some("train two"), 2)]],
    );
    write_parquet(
        &dir.join("train-00000-of-00011.parquet"),
        &[&[(Some("train zero"), 1)]],
    );
    write_parquet(
        &dir.join("test-00000-of-00001.parquet"),
        &[&[(Some("test"), 9)]],
    );
    write_parquet(
        &dir.join("validation-00000-of-00001.parquet"),
        &[&[(Some("validation"), 8)]],
    );
}

#[test]
fn a_hugging_face_folder_reads_the_train_split_in_shard_order() {
    let dir = TempDir::new().unwrap();
    hub_folder(dir.path());
    assert_eq!(
        split_texts(dir.path(), "train"),
        ["train zero", "train two", "train ten"]
    );
    assert_eq!(split_texts(dir.path(), "validation"), ["validation"]);
    let dataset = open(dir.path(), DatasetFormat::Auto);
    let files: Vec<String> = dataset
        .identity()
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        [
            "train-00000-of-00011.parquet",
            "train-00002-of-00011.parquet",
            "train-00010-of-00011.parquet"
        ]
    );
    let spec = DatasetSpec {
        split: "dev".into(),
        ..DatasetSpec::new(dir.path())
    };
    let err = Dataset::open(&spec).unwrap_err().to_string();
    assert!(err.contains("no files of split `dev`"), "{err}");
    assert!(err.contains("test, train, validation"), "{err}");
    assert!(err.contains("training.dataset.split"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_hub_cache_snapshot_of_symlinks_under_data_is_read() {
    let root = TempDir::new().unwrap();
    let blobs = root.path().join("blobs");
    hub_folder(&blobs);
    let data = root.path().join("snapshots/abc123/data");
    std::fs::create_dir_all(&data).unwrap();
    for (i, entry) in std::fs::read_dir(&blobs).unwrap().enumerate() {
        let blob = entry.unwrap().path();
        // The cache names blobs by hash; the snapshot's link keeps the file name.
        let hashed = blobs.join(format!("{:040x}", i * 7919));
        let name = blob.file_name().unwrap().to_owned();
        std::fs::rename(&blob, &hashed).unwrap();
        std::os::unix::fs::symlink(&hashed, data.join(name)).unwrap();
    }
    let snapshot = root.path().join("snapshots/abc123");
    assert_eq!(
        split_texts(&snapshot, "train"),
        ["train zero", "train two", "train ten"]
    );
}
