//! `docent models`.

use anyhow::{bail, Result};
use clap::Subcommand;
use docent_models::{Manifest, ModelKind, ModelStore};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Show every model of the manifest, whether it is here, its size and path.
    List,
    /// Fetch models (all of the manifest by default, passing over the
    /// hub-only ones when the hub is unreachable) into the Hugging Face cache.
    Pull {
        /// Manifest name or Hugging Face id.
        names: Vec<String>,
        /// Fetch again even if the files are present.
        #[arg(long)]
        force: bool,
    },
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub fn run(cmd: ModelsCommand) -> Result<()> {
    let manifest = Manifest::builtin();
    let store = ModelStore::from_env();
    match cmd {
        ModelsCommand::List => {
            println!("cache: {}", store.config().cache_dir.display());
            for spec in &manifest.models {
                let kind = match spec.kind {
                    ModelKind::Encoder => "encoder",
                    ModelKind::Generator => "generator",
                };
                match store.locate(spec) {
                    Ok(Some(local)) => println!(
                        "{:<28} {:<9} present  {:>9}  {}",
                        spec.name,
                        kind,
                        human(local.size()),
                        local.dir.display()
                    ),
                    Ok(None) => println!(
                        "{:<28} {:<9} missing  {:>9}  `docent models pull {}`",
                        spec.name,
                        kind,
                        spec.total_size().map(human).unwrap_or_default(),
                        spec.name
                    ),
                    Err(e) => println!("{:<28} {:<9} damaged  {e}", spec.name, kind),
                }
            }
            match &store.config().layouts_dir {
                Some(dir) => {
                    let files: Vec<u64> = std::fs::read_dir(dir)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "layouts"))
                        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                        .collect();
                    println!(
                        "weight layouts saved by loads: {} in {} file(s) at {} \
                         (derived data: delete them to reclaim the space; DOCENT_LAYOUTS=off saves none)",
                        human(files.iter().sum()),
                        files.len(),
                        dir.display()
                    );
                }
                None => println!("weight layouts: not saved (DOCENT_LAYOUTS=off)"),
            }
            Ok(())
        }
        ModelsCommand::Pull { names, force } => {
            let specs = if names.is_empty() {
                manifest.models.clone()
            } else {
                let mut v = Vec::new();
                for n in &names {
                    match manifest.get(n) {
                        Some(s) => v.push(s.clone()),
                        None if n.contains('/') => {
                            v.push(docent_rag::models::encoder_spec(Some(n))?)
                        }
                        None => {
                            bail!("unknown model {n:?}; `docent models list` shows the known ones")
                        }
                    }
                }
                v
            };
            let all = names.is_empty();
            for spec in specs {
                let hub_only = spec.files.iter().all(|f| f.mirror.is_empty());
                let local = match store.pull(&spec, force) {
                    Ok(local) => local,
                    // Pulling everything, a form of a model only the hub
                    // holds is passed over when the hub cannot be reached.
                    Err(e @ docent_models::ModelError::Unavailable { .. }) if all && hub_only => {
                        eprintln!("{:<28} skipped (hub only): {e}", spec.name);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                println!(
                    "{:<28} {:>9}  {}",
                    spec.name,
                    human(local.size()),
                    local.dir.display()
                );
            }
            Ok(())
        }
    }
}
