//! Writes every scenario trace into a directory: `cargo run --example write_scenarios -- DIR`.

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    std::fs::create_dir_all(&dir)?;
    for (name, _) in fdr_test_support::scenarios::SCENARIOS {
        let bytes = fdr_test_support::scenarios::scenario(name).expect("listed scenario");
        let path = std::path::Path::new(&dir).join(format!("{name}.fdr"));
        std::fs::write(&path, bytes)?;
        println!("{}", path.display());
    }
    Ok(())
}
