//! `docs/TABLES.md` lists every table and column exactly as the writer writes them: the
//! part after its marker is `fdr_fleet::schema::markdown()` (`UPDATE_EXPECT=1` rewrites it).

use std::path::Path;

const MARKER: &str = "<!-- The rest is generated from crates/fdr-fleet/src/schema.rs. -->\n";

#[test]
fn docs_tables_md_matches_the_schema() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/TABLES.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text
        .find(MARKER)
        .unwrap_or_else(|| panic!("{} lacks the marker {MARKER:?}", path.display()));
    let head = &text[..at + MARKER.len()];
    let want = format!("{head}\n{}", fdr_fleet::schema::markdown());
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        text == want,
        "docs/TABLES.md differs from the schema; run with UPDATE_EXPECT=1 to rewrite it"
    );
}

#[test]
fn every_table_has_the_identity_columns_first_and_unique_names() {
    for t in fdr_fleet::schema::TABLES {
        let names: Vec<&str> = t.all_columns().map(|c| c.name).collect();
        assert_eq!(&names[..4], ["host", "service", "dump_id", "incident_id"]);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{}: a column twice", t.name);
        assert_eq!(fdr_fleet::table_def(t.name).map(|d| d.name), Some(t.name));
    }
}
