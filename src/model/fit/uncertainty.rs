//! Standard errors and event counts of every offset from the final pass.

use super::*;

impl State<'_> {
    /// Standard errors and counts of every offset from the final pass.
    pub(super) fn finish_uncertainty(&mut self, acc: &Acc) {
        let g = self.model.globals.clone();
        let v_as = g.sd_article_size.powi(2);
        let v_prod = g.sd_product.powi(2);
        let np = self.model.products.len();
        let mut prod_info = vec![0.0; np];
        let mut prod_n = vec![0u64; np];
        let mut brand_info = vec![0.0; self.model.brands.len()];
        let mut brand_n = vec![0u64; self.model.brands.len()];
        let mut cat_info = vec![0.0; self.model.categories.len()];
        let mut cat_n = vec![0u64; self.model.categories.len()];
        let mut lab_info = vec![0.0; self.model.labels.len()];
        let mut lab_n = vec![0u64; self.model.labels.len()];
        for (j, a) in self.as_ref.iter().enumerate() {
            let h = acc.art[j].ht;
            let n = self.data.as_count[j];
            // the model's product-in-size of fit article-size j (as the plan mapped it)
            if let Some(&i) = self.as_group[4].get(j).filter(|&&i| i != NONE) {
                if let Some(x) = self.model.article_sizes.get_mut(i as usize) {
                    x.offset.se = 1.0 / (h + 1.0 / v_as).sqrt();
                    x.offset.n = n;
                }
            }
            if a.product != NONE {
                prod_info[a.product as usize] += 1.0 / (v_as + 1.0 / h.max(1e-12));
                prod_n[a.product as usize] += n;
            } else if a.brand != NONE {
                brand_info[a.brand as usize] += 1.0 / (v_as + v_prod + 1.0 / h.max(1e-12));
                brand_n[a.brand as usize] += n;
            }
            if a.category != NONE {
                cat_info[a.category as usize] += h;
                cat_n[a.category as usize] += n;
            }
            if (a.label as usize) < lab_info.len() {
                lab_info[a.label as usize] += h;
                lab_n[a.label as usize] += n;
            }
        }
        for (p, info) in self.model.product_info.iter().enumerate() {
            if info.brand != NONE {
                brand_info[info.brand as usize] += 1.0 / (v_prod + 1.0 / prod_info[p].max(1e-12));
                brand_n[info.brand as usize] += prod_n[p];
            }
        }
        let se = |info: f64, sd: f64| 1.0 / (info + 1.0 / (sd * sd)).sqrt();
        for (p, x) in self.model.products.iter_mut().enumerate() {
            x.offset.se = se(prod_info[p], g.sd_product);
            x.offset.n = prod_n[p];
        }
        for (b, x) in self.model.brands.iter_mut().enumerate() {
            x.offset.se = se(brand_info[b], g.sd_brand);
            x.offset.n = brand_n[b];
        }
        for (k, x) in self.model.categories.iter_mut().enumerate() {
            x.offset.se = se(cat_info[k], g.sd_category);
            x.offset.n = cat_n[k];
        }
        for (k, x) in self.model.labels.iter_mut().enumerate() {
            x.offset.se = se(lab_info[k], g.sd_label);
            x.offset.n = lab_n[k];
        }
    }
}
