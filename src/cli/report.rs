//! `runsize report`: the merchant pages (brand ranking, every brand's page, the model
//! page) as one self-contained HTML file, written atomically.

use crate::model::{artifact, ModelError};
use crate::serve::web::report::report_html;
use std::io::Write;
use std::path::PathBuf;

/// Options of `runsize report`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// HTML file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// `runsize report`.
pub fn run(args: &ReportArgs) -> Result<(), crate::Error> {
    let (model, header) = artifact::load_predictor(&args.model)?;
    let html = report_html(&model, &header);
    let fail = |m: String| ModelError::Artifact {
        path: args.out.clone(),
        message: m,
    };
    let dir = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).map_err(|e| fail(format!("temp file: {e}")))?;
    tmp.write_all(html.as_bytes())
        .map_err(|e| fail(format!("write: {e}")))?;
    tmp.persist(&args.out)
        .map_err(|e| fail(format!("rename into place: {}", e.error)))?;
    println!("wrote {} ({} bytes)", args.out.display(), html.len());
    Ok(())
}
