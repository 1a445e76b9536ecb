//! The symmetric Gram product `xᵀ·diag(w)·x` of the learners' Hessian blocks, computed
//! on the upper block triangle only.

use ndarray::{s, Array2, ArrayView2};

/// Column blocks of [`symmetric_gram`]'s products.
const GRAM_BLOCKS: usize = 4;

/// `xwᵀ·x` for `xw = diag(w)·x` (rows scaled; the product is symmetric), computed as
/// the products of each block of [`GRAM_BLOCKS`] columns with the columns from its own on
/// (the upper triangle and the diagonal blocks: ~5/8 of the full product's
/// multiply-adds), the rest mirrored.
pub(super) fn symmetric_gram(xw: ArrayView2<'_, f32>, x: ArrayView2<'_, f32>) -> Array2<f32> {
    let p = x.ncols();
    let width = p.div_ceil(GRAM_BLOCKS).max(1);
    let mut h = Array2::<f32>::zeros((p, p));
    for lo in (0..p).step_by(width) {
        let hi = (lo + width).min(p);
        let block = xw.slice(s![.., lo..hi]).t().dot(&x.slice(s![.., lo..]));
        h.slice_mut(s![lo..hi, lo..]).assign(&block);
    }
    // below the diagonal blocks: the mirror of what is above them
    for i in 0..p {
        let lo = i / width * width;
        for j in 0..lo {
            h[[i, j]] = h[[j, i]];
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_gram_is_the_full_product() {
        // 7 rows x 6 columns (blocks of 2: the mirror crosses every block boundary)
        let x = ndarray::Array2::from_shape_fn((7, 6), |(i, j)| ((i * 5 + j * 3) % 7) as f32 - 3.0);
        let mut xw = x.clone();
        for (i, mut r) in xw.rows_mut().into_iter().enumerate() {
            r *= 0.5 + i as f32;
        }
        let full = xw.t().dot(&x);
        assert_eq!(symmetric_gram(xw.view(), x.view()), full);
        // one column
        let x1 = ndarray::Array2::from_shape_fn((3, 1), |(i, _)| i as f32);
        assert_eq!(symmetric_gram(x1.view(), x1.view()), x1.t().dot(&x1));
    }
}
