//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (from the
//! repository root) fills `fuzz/corpus/<target>/seed-<name>` from the crates' own encoders.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, _) in poa_fuzz::TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in poa_fuzz::seeds::seeds(target) {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
    }
    println!("seeds written under {}", root.display());
    Ok(())
}
