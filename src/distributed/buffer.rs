//! The customer aggregate's row buffers: each customer's start and events gathered by
//! group index, their fixed-width state between the partial and final phases, and the
//! kernel run on a finished buffer.

use super::udaf::CUSTOMER;
use crate::model::{CustomerRows, CustomerStart, PassContext};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, LargeBinaryBuilder};
use datafusion::arrow::datatypes::{Float32Type, Float64Type, UInt32Type, UInt64Type, UInt8Type};
use datafusion::common::exec_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::EmitTo;
use std::sync::Arc;

fn exec(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// A customer's start: (cust, s0, u0, m, feat).
pub(super) type Start = (u32, f64, f32, f32, bool);

/// One buffered event: (event index, article-size, outcome).
pub(super) type Row = (u64, u32, u8);

/// Bytes of an encoded start and of an encoded row (fixed width, little-endian).
pub(super) const START_BYTES: usize = 4 + 8 + 4 + 4 + 1;
pub(super) const ROW_BYTES: usize = 8 + 4 + 1;

/// One customer's buffered rows (the aggregate's state between its partial and final
/// phases): the start and the events in any order.
#[derive(Debug, Default)]
pub(super) struct Buffered {
    pub(super) start: Option<Start>,
    pub(super) rows: Vec<Row>,
}

impl Buffered {
    /// The state's bytes: a flag byte, the start if present, then the rows (fixed width).
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(1 + START_BYTES + self.rows.len() * ROW_BYTES);
        match self.start {
            None => out.push(0),
            Some((c, s, u, m, f)) => {
                out.push(1);
                out.extend_from_slice(&c.to_le_bytes());
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&u.to_le_bytes());
                out.extend_from_slice(&m.to_le_bytes());
                out.push(u8::from(f));
            }
        }
        for &(e, a, y) in &self.rows {
            out.extend_from_slice(&e.to_le_bytes());
            out.extend_from_slice(&a.to_le_bytes());
            out.push(y);
        }
    }

    /// Adds an encoded state (from [`Buffered::encode`]) to this one.
    pub(super) fn merge(&mut self, b: &[u8]) -> Result<()> {
        let bad = || exec_err!("{CUSTOMER}: malformed state of {} bytes", b.len());
        let Some((&flag, mut rest)) = b.split_first() else {
            return bad();
        };
        if flag == 1 {
            let Some((st, tail)) = rest.split_first_chunk::<START_BYTES>() else {
                return bad();
            };
            if self.start.is_none() {
                self.start = Some((
                    u32::from_le_bytes([st[0], st[1], st[2], st[3]]),
                    f64::from_le_bytes([st[4], st[5], st[6], st[7], st[8], st[9], st[10], st[11]]),
                    f32::from_le_bytes([st[12], st[13], st[14], st[15]]),
                    f32::from_le_bytes([st[16], st[17], st[18], st[19]]),
                    st[20] != 0,
                ));
            }
            rest = tail;
        } else if flag != 0 {
            return bad();
        }
        if rest.len() % ROW_BYTES != 0 {
            return bad();
        }
        self.rows.reserve(rest.len() / ROW_BYTES);
        for r in rest.chunks_exact(ROW_BYTES) {
            self.rows.push((
                u64::from_le_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]]),
                u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
                r[12],
            ));
        }
        Ok(())
    }

    /// Runs the kernel on the customer's events (sorted into the local pass's event
    /// order, so the sums come out in the same order): the encoded [`CustomerOut`], or
    /// None for a group without a start.
    pub(super) fn finish(&mut self, ctx: &PassContext) -> Result<Option<Vec<u8>>> {
        let Some((customer, s, u, prior_mean, has_features)) = self.start else {
            return Ok(None);
        };
        self.rows.sort_unstable_by_key(|r| r.0);
        let ev_as: Vec<u32> = self.rows.iter().map(|r| r.1).collect();
        let ev_y: Vec<u8> = self.rows.iter().map(|r| r.2).collect();
        let rows = CustomerRows {
            start: CustomerStart {
                customer,
                s,
                u,
                prior_mean,
                has_features,
            },
            ev_as: &ev_as,
            ev_y: &ev_y,
        };
        Ok(Some(ctx.customer(&rows).to_bytes().map_err(exec)?))
    }
}

/// The columns of `runsize_customer`'s arguments, typed.
pub(super) struct Args<'a> {
    pub(super) cust: &'a [u32],
    e: &'a [u64],
    asz: &'a [u32],
    y: &'a [u8],
    s0: &'a [f64],
    u0: &'a [f32],
    m: &'a [f32],
    feat: &'a datafusion::arrow::array::BooleanArray,
    /// The key columns (customer, event, article-size, outcome): a row with a null in
    /// any of them is skipped.
    nulls: [&'a dyn Array; 4],
}

impl<'a> Args<'a> {
    pub(super) fn new(v: &'a [ArrayRef]) -> Result<Self> {
        if v.len() < 8 {
            return exec_err!("{CUSTOMER}: {} columns", v.len());
        }
        Ok(Args {
            cust: v[0].as_primitive::<UInt32Type>().values(),
            e: v[1].as_primitive::<UInt64Type>().values(),
            asz: v[2].as_primitive::<UInt32Type>().values(),
            y: v[3].as_primitive::<UInt8Type>().values(),
            s0: v[4].as_primitive::<Float64Type>().values(),
            u0: v[5].as_primitive::<Float32Type>().values(),
            m: v[6].as_primitive::<Float32Type>().values(),
            feat: v[7].as_boolean(),
            nulls: [&v[0], &v[1], &v[2], &v[3]],
        })
    }

    /// Adds row `i` to `b` (rows with a null key are skipped).
    pub(super) fn push(&self, i: usize, b: &mut Buffered, check_nulls: bool) {
        if check_nulls && self.nulls.iter().any(|a| a.is_null(i)) {
            return;
        }
        if b.start.is_none() {
            b.start = Some((
                self.cust[i],
                self.s0[i],
                self.u0[i],
                self.m[i],
                self.feat.value(i),
            ));
        }
        b.rows.push((self.e[i], self.asz[i], self.y[i]));
    }

    pub(super) fn has_nulls(&self) -> bool {
        self.nulls.iter().any(|a| a.null_count() > 0)
    }
}

/// Every group's buffered rows by group index (the context-free half of
/// [`CustomerGroups`]).
#[derive(Debug, Default)]
pub(super) struct Groups {
    pub(super) groups: Vec<Buffered>,
    /// Rows buffered over all groups (for [`GroupsAccumulator::size`]).
    pub(super) rows: usize,
}

impl Groups {
    /// Appends each row to its group's buffer (rows filtered out or with a null key
    /// skipped).
    pub(super) fn update(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let a = Args::new(values)?;
        self.groups.resize_with(total_num_groups, Buffered::default);
        let nulls = a.has_nulls();
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !(f.is_valid(i) && f.value(i))) {
                continue;
            }
            let Some(b) = self.groups.get_mut(g) else {
                return exec_err!("{CUSTOMER}: group {g} of {total_num_groups}");
            };
            let before = b.rows.len();
            a.push(i, b, nulls);
            self.rows += b.rows.len() - before;
        }
        Ok(())
    }

    /// Adds encoded states (a `LargeBinary` column) to their groups' buffers.
    pub(super) fn merge(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(col) = values.first() else {
            return Ok(());
        };
        let col = col.as_binary::<i64>();
        self.groups.resize_with(total_num_groups, Buffered::default);
        for (i, &g) in group_indices.iter().enumerate() {
            if col.is_null(i) {
                continue;
            }
            let Some(b) = self.groups.get_mut(g) else {
                return exec_err!("{CUSTOMER}: group {g} of {total_num_groups}");
            };
            let before = b.rows.len();
            b.merge(col.value(i))?;
            self.rows += b.rows.len() - before;
        }
        Ok(())
    }

    /// Removes and returns the groups `emit_to` names.
    pub(super) fn take(&mut self, emit_to: EmitTo) -> Vec<Buffered> {
        let out = emit_to.take_needed(&mut self.groups);
        self.rows -= out.iter().map(|b| b.rows.len()).sum::<usize>();
        out
    }

    /// The groups `emit_to` names, encoded (one `LargeBinary` value each).
    pub(super) fn state(&mut self, emit_to: EmitTo) -> ArrayRef {
        let groups = self.take(emit_to);
        let bytes: usize = groups
            .iter()
            .map(|b| 1 + START_BYTES + b.rows.len() * ROW_BYTES)
            .sum();
        let mut out = LargeBinaryBuilder::with_capacity(groups.len(), bytes);
        let mut buf = Vec::new();
        for b in groups {
            buf.clear();
            b.encode(&mut buf);
            out.append_value(&buf);
        }
        Arc::new(out.finish())
    }
}

/// Each row as its own group's encoded state (null when filtered out): what the
/// partial phase passes on when it stops aggregating.
pub(super) fn row_states(
    values: &[ArrayRef],
    opt_filter: Option<&BooleanArray>,
) -> Result<ArrayRef> {
    let a = Args::new(values)?;
    let nulls = a.has_nulls();
    let n = a.cust.len();
    let mut out = LargeBinaryBuilder::with_capacity(n, n * (1 + START_BYTES + ROW_BYTES));
    let mut one = Buffered::default();
    let mut buf = Vec::new();
    for i in 0..n {
        if opt_filter.is_some_and(|f| !(f.is_valid(i) && f.value(i))) {
            out.append_null();
            continue;
        }
        one.start = None;
        one.rows.clear();
        a.push(i, &mut one, nulls);
        buf.clear();
        one.encode(&mut buf);
        out.append_value(&buf);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Float32Array, Float64Array, UInt32Array, UInt64Array, UInt8Array,
    };

    /// Six events of customers 7, 9, 7, 11, 9, 7 (starts repeated per row, as the join
    /// gives them).
    fn batch() -> (Vec<ArrayRef>, Vec<usize>) {
        let cust = [7u32, 9, 7, 11, 9, 7];
        let start = |c: u32| (c as f64 * 0.5, c as f32 * 0.25, c as f32, c == 9);
        let v: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(cust.to_vec())),
            Arc::new(UInt64Array::from(vec![5u64, 1, 3, 2, 9, 0])),
            Arc::new(UInt32Array::from(vec![40u32, 41, 42, 43, 44, 45])),
            Arc::new(UInt8Array::from(vec![0u8, 1, 2, 1, 0, 2])),
            Arc::new(Float64Array::from_iter_values(cust.map(|c| start(c).0))),
            Arc::new(Float32Array::from_iter_values(cust.map(|c| start(c).1))),
            Arc::new(Float32Array::from_iter_values(cust.map(|c| start(c).2))),
            Arc::new(BooleanArray::from(cust.map(|c| start(c).3).to_vec())),
            Arc::new(datafusion::arrow::array::StringArray::from(vec!["p"; 6])),
        ];
        (v, vec![0, 1, 0, 2, 1, 0])
    }

    #[test]
    fn rows_buffer_by_group_and_their_states_round_trip() {
        let (v, g) = batch();
        let mut groups = Groups::default();
        groups.update(&v, &g, None, 3).unwrap();
        assert_eq!(groups.rows, 6);
        let b = &groups.groups[0];
        assert_eq!(b.start, Some((7, 3.5, 1.75, 7.0, false)));
        assert_eq!(b.rows, vec![(5, 40, 0), (3, 42, 2), (0, 45, 2)]);
        assert_eq!(groups.groups[1].start, Some((9, 4.5, 2.25, 9.0, true)));
        // state then merge elsewhere: the same buffers, bit for bit
        let state = groups.state(EmitTo::All);
        assert_eq!(groups.rows, 0);
        let mut other = Groups::default();
        other.merge(&[state], &[2, 0, 1], 3).unwrap();
        assert_eq!(
            other.groups[2].rows,
            vec![(5, 40, 0), (3, 42, 2), (0, 45, 2)]
        );
        assert_eq!(other.groups[0].rows, vec![(1, 41, 1), (9, 44, 0)]);
        assert_eq!(other.groups[1].start, Some((11, 5.5, 2.75, 11.0, false)));
    }

    #[test]
    fn skipping_the_partial_phase_buffers_the_same_rows() {
        // the partial phase's per-row states merged by group = the rows buffered directly
        let (v, g) = batch();
        let mut direct = Groups::default();
        direct.update(&v, &g, None, 3).unwrap();
        let mut via = Groups::default();
        via.merge(&[row_states(&v, None).unwrap()], &g, 3).unwrap();
        assert_eq!(via.rows, direct.rows);
        for (a, b) in direct.groups.iter().zip(&via.groups) {
            assert_eq!(a.start, b.start);
            assert_eq!(a.rows, b.rows);
        }
        // a filter drops rows in both paths
        let keep = BooleanArray::from(vec![true, false, true, true, true, false]);
        let mut direct = Groups::default();
        direct.update(&v, &g, Some(&keep), 3).unwrap();
        let mut via = Groups::default();
        via.merge(&[row_states(&v, Some(&keep)).unwrap()], &g, 3)
            .unwrap();
        assert_eq!(direct.rows, 4);
        assert_eq!(via.rows, 4);
        assert_eq!(direct.groups[0].rows, via.groups[0].rows);
        assert_eq!(via.groups[0].rows, vec![(5, 40, 0), (3, 42, 2)]);
    }

    #[test]
    fn a_malformed_state_is_an_error_not_a_panic() {
        let mut b = Buffered::default();
        for bad in [&[][..], &[2][..], &[1, 0, 0][..], &[0, 1, 2][..]] {
            let e = b.merge(bad).unwrap_err().to_string();
            assert!(e.contains("malformed state"), "{e}");
        }
        assert!(b.rows.is_empty());
    }
}
