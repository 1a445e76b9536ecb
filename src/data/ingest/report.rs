//! The ingest report: rows read and kept, bad rows by reason with examples, outcome counts.

use super::*;

/// Why a row was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadReason {
    /// The customer id is null.
    MissingCustomerId,
    /// The size label is null.
    MissingSize,
    /// The outcome is null (only when outcomes are required).
    MissingOutcome,
    /// The size label could not be parsed.
    BadSize,
    /// The outcome value is not in the outcome map (only when outcomes are required).
    UnknownOutcome,
    /// The timestamp is null (only when a timestamp column is read).
    MissingTimestamp,
    /// The timestamp could not be parsed.
    BadTimestamp,
}

impl BadReason {
    /// Every reason, in check order (a row gets the first that applies).
    pub const ALL: [BadReason; 7] = [
        BadReason::MissingCustomerId,
        BadReason::MissingSize,
        BadReason::MissingOutcome,
        BadReason::BadSize,
        BadReason::UnknownOutcome,
        BadReason::MissingTimestamp,
        BadReason::BadTimestamp,
    ];

    /// Human text of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::MissingCustomerId => "missing customer_id",
            BadReason::MissingSize => "missing size",
            BadReason::MissingOutcome => "missing outcome",
            BadReason::BadSize => "unparseable size",
            BadReason::UnknownOutcome => "unknown outcome",
            BadReason::MissingTimestamp => "missing timestamp",
            BadReason::BadTimestamp => "bad timestamp",
        }
    }

    pub(super) fn code(self) -> u8 {
        self as u8 + ST_BAD0
    }
}

/// A row of an input file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowRef {
    /// The file.
    pub file: PathBuf,
    /// 1-based data row number within the file (the header is not counted).
    pub row: u64,
}

/// Bad rows of one reason.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BadRows {
    /// The reason.
    pub reason: BadReason,
    /// The reason as text.
    pub message: String,
    /// How many rows.
    pub count: u64,
    /// Up to 5 example rows.
    pub examples: Vec<RowRef>,
    /// Up to 5 distinct offending values (size labels, outcome values, timestamps).
    pub values: Vec<String>,
}

/// Counts of kept events per outcome class.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutcomeCounts {
    /// Too small.
    pub small: u64,
    /// Fit.
    pub fit: u64,
    /// Too large.
    pub large: u64,
    /// Other (kept, but out of fit learning).
    pub other: u64,
}

/// Summary of what ingest read and rejected.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IngestReport {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Data rows read (all files).
    pub rows_read: u64,
    /// Rows removed by the row filter (not bad).
    pub rows_filtered: u64,
    /// Rows rejected as bad (sum over `bad_rows`).
    pub rows_bad: u64,
    /// Rows kept as events.
    pub rows_kept: u64,
    /// Bad rows by reason (only reasons that occurred, in check order).
    pub bad_rows: Vec<BadRows>,
    /// Kept events whose outcome is [`Outcome::Other`] (kept out of fit learning).
    pub other_outcomes: u64,
    /// Kept events without an outcome value (only when outcomes are optional).
    pub rows_without_outcome: u64,
    /// Kept events per outcome class (events with an outcome value only).
    pub outcomes: OutcomeCounts,
    /// Distinct customers among kept events.
    pub customers: usize,
    /// Distinct products among kept events.
    pub products: usize,
    /// Distinct brands among kept events.
    pub brands: usize,
    /// Distinct categories among kept events.
    pub categories: usize,
    /// Distinct parsed size labels among kept events.
    pub sizes: usize,
    /// Wall-clock seconds spent.
    pub seconds: f64,
}

impl IngestReport {
    /// A short human summary (a few lines).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "read {} rows from {} file(s) in {:.2}s ({:.0} rows/s): kept {}, filtered {}, bad {}\n",
            self.rows_read,
            self.files.len(),
            self.seconds,
            if self.seconds > 0.0 {
                self.rows_read as f64 / self.seconds
            } else {
                0.0
            },
            self.rows_kept,
            self.rows_filtered,
            self.rows_bad
        );
        s.push_str(&format!(
            "outcomes: small {}, fit {}, large {}, other {} (other outcomes kept out of fit learning){}\n",
            self.outcomes.small,
            self.outcomes.fit,
            self.outcomes.large,
            self.outcomes.other,
            if self.rows_without_outcome > 0 {
                format!(", no outcome {}", self.rows_without_outcome)
            } else {
                String::new()
            }
        ));
        s.push_str(&format!(
            "distinct: {} customers, {} products, {} brands, {} categories, {} sizes",
            self.customers, self.products, self.brands, self.categories, self.sizes
        ));
        if !self.bad_rows.is_empty() {
            s.push('\n');
            s.push_str(&bad_rows_text(&self.bad_rows));
        }
        s
    }
}

pub(super) fn bad_rows_text(bad: &[BadRows]) -> String {
    let mut lines = Vec::new();
    for b in bad {
        let examples: Vec<String> = b
            .examples
            .iter()
            .map(|r| format!("{} row {}", r.file.display(), r.row))
            .collect();
        let mut line = format!(
            "  {}: {} row(s), e.g. {}",
            b.message,
            b.count,
            examples.join(", ")
        );
        if !b.values.is_empty() {
            let vals: Vec<String> = b.values.iter().map(|v| format!("'{v}'")).collect();
            line.push_str(&format!(" (values: {})", vals.join(", ")));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// Events plus the ingest report.
#[derive(Clone, Debug)]
pub struct Ingested {
    /// The events.
    pub events: Events,
    /// What was read and rejected.
    pub report: IngestReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_summary_mentions_reasons() {
        let r = IngestReport {
            rows_read: 10,
            rows_kept: 9,
            rows_bad: 1,
            bad_rows: vec![BadRows {
                reason: BadReason::BadSize,
                message: BadReason::BadSize.as_str().into(),
                count: 1,
                examples: vec![RowRef {
                    file: "x.csv".into(),
                    row: 4,
                }],
                values: vec!["XXXXXL?".into()],
            }],
            ..Default::default()
        };
        let s = r.summary();
        assert!(
            s.contains("unparseable size: 1 row(s), e.g. x.csv row 4"),
            "{s}"
        );
        assert!(s.contains("'XXXXXL?'"), "{s}");
    }
}
