//! [`StoredInput`]: a training event's purchase input as the learners' rows keep it
//! (compact, `f32`), and its way back to a [`StackInput`].

use crate::model::stack::{CustomerRates, LevelFeatures, StackInput};

/// Number of values a [`StoredInput`] keeps.
const STORED: usize = 30;

/// A training event's purchase input as the learners' rows keep it: its values in `f32`
/// (124 bytes, under half a [`StackInput`]'s: at the learners' 1M rows, ~150 MB less
/// held through the final fit and beside the learners' design) and no body row (the
/// customer's row of [`TrainingInputs::bodies`](super::TrainingInputs::bodies) goes back in where it is read). The
/// purchase learner's design is `f32` already; the offer calibration's `f64` design is
/// built from the same rounded values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoredInput {
    values: [f32; STORED],
    /// `smallest`, `largest`, and whether the customer's mean position is known.
    flags: u8,
}

impl StoredInput {
    /// `x` rounded to `f32`, without its body row.
    pub fn of(x: &StackInput<'_>) -> StoredInput {
        let lv = &x.levels;
        let cu = &x.customer;
        let (p, c, b, pr, sz, d, u, lo) = (
            x.probs,
            lv.category,
            lv.brand,
            lv.product,
            lv.size,
            lv.down,
            lv.up,
            cu.log_odds,
        );
        let all: [f64; STORED] = [
            p[0],
            p[1],
            p[2],
            x.gap,
            x.gap_sd,
            x.prior_gap,
            x.choice_gap,
            x.label_pos,
            c[0],
            c[1],
            b[0],
            b[1],
            pr[0],
            pr[1],
            pr[2],
            lv.product_n,
            sz[0],
            sz[1],
            lv.size_n,
            d[0],
            d[1],
            d[2],
            u[0],
            u[1],
            u[2],
            lo[0],
            lo[1],
            lo[2],
            cu.n,
            cu.mean_pos.unwrap_or(0.0),
        ];
        let values = all.map(|v| v as f32);
        let flags =
            u8::from(x.smallest) | u8::from(x.largest) << 1 | u8::from(cu.mean_pos.is_some()) << 2;
        StoredInput { values, flags }
    }

    /// The label's position on the common scale ([`StackInput::label_pos`]).
    pub fn label_pos(&self) -> f64 {
        f64::from(self.values[7])
    }

    /// The input back (values widened to `f64`, no body row).
    pub fn input(&self) -> StackInput<'static> {
        let v = self.values.map(f64::from);
        let take = |at: usize| -> [f64; 3] { [v[at], v[at + 1], v[at + 2]] };
        let pair = |at: usize| -> [f64; 2] { [v[at], v[at + 1]] };
        StackInput {
            probs: take(0),
            gap: v[3],
            gap_sd: v[4],
            prior_gap: v[5],
            choice_gap: v[6],
            label_pos: v[7],
            smallest: self.flags & 1 != 0,
            largest: self.flags & 2 != 0,
            levels: LevelFeatures {
                category: pair(8),
                brand: pair(10),
                product: take(12),
                product_n: v[15],
                size: pair(16),
                size_n: v[18],
                down: take(19),
                up: take(22),
            },
            customer: CustomerRates {
                log_odds: take(25),
                n: v[28],
                mean_pos: (self.flags & 4 != 0).then_some(v[29]),
            },
            body: &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_inputs_keep_every_field_to_f32() {
        let x = StackInput {
            probs: [0.1, 0.7, 0.2],
            gap: -0.25,
            gap_sd: 0.5,
            prior_gap: 1.5,
            choice_gap: -2.0,
            label_pos: 3.0,
            smallest: true,
            largest: false,
            levels: LevelFeatures {
                category: [1.0, 2.0],
                brand: [3.0, 4.0],
                product: [5.0, 6.0, 7.0],
                product_n: 8.0,
                size: [9.0, 10.0],
                size_n: 11.0,
                down: [12.0, 13.0, 14.0],
                up: [15.0, 16.0, 17.0],
            },
            customer: CustomerRates {
                log_odds: [18.0, 19.0, 20.0],
                n: 21.0,
                mean_pos: Some(22.0),
            },
            body: &[1.0, 2.0],
        };
        let back = StoredInput::of(&x).input();
        // 0.1 and 0.7 are not f32 values: they come back as the nearest f32
        assert_eq!(
            back.probs,
            [0.10000000149011612, 0.699999988079071, 0.2f32 as f64]
        );
        assert_eq!(back.probs[0], f64::from(0.1f32));
        // every other value is exact in f32: all of them come back as they were, in
        // their own field, with the flags and without the body row
        let exact = StackInput {
            probs: back.probs,
            body: &[],
            ..x
        };
        assert_eq!(back, exact);
        assert_eq!(StoredInput::of(&x).label_pos(), 3.0);
        // an unknown mean position and the other flag
        let y = StackInput {
            smallest: false,
            largest: true,
            customer: CustomerRates {
                mean_pos: None,
                ..x.customer
            },
            ..exact
        };
        assert_eq!(StoredInput::of(&y).input(), y);
        // the size the documentation gives
        assert_eq!(std::mem::size_of::<StoredInput>(), 124);
        assert!(std::mem::size_of::<StackInput<'_>>() > 2 * 124);
    }
}
