//! `runsize report`: the merchant pages as one self-contained HTML file (inline
//! stylesheet, inline SVG, no script, no links outside the file): the ranking, every
//! brand's page, and the model page.

use super::brand_page::{brand_page, BrandParams};
use super::html::{page, Delivery, Nav};
use super::pages::{model_page, ranking, RankParams};
use crate::model::artifact::ArtifactHeader;
use crate::model::predictor::Predictor;
use crate::model::report::ProfileBy;

/// Most brand sections in one report (the most certain effects first).
pub const MAX_BRANDS: usize = 100;

/// The report's HTML.
pub fn report_html(model: &Predictor, header: &ArtifactHeader) -> String {
    let mut body = String::with_capacity(256 * 1024);
    let brands = model.profiles(ProfileBy::Brand);
    let by = if brands.is_empty() {
        ProfileBy::Category
    } else {
        ProfileBy::Brand
    };
    let profiles = if brands.is_empty() {
        model.profiles(ProfileBy::Category)
    } else {
        brands
    };
    body.push_str(&ranking(
        model,
        profiles,
        &RankParams {
            by,
            ..RankParams::default()
        },
        false,
    ));
    if brands.is_empty() {
        // no brands: the flagged products stand in for the brand pages
        let products = model.profiles(ProfileBy::Product);
        body.push_str("<hr>");
        body.push_str(&ranking(
            model,
            products,
            &RankParams {
                by: ProfileBy::Product,
                ..RankParams::default()
            },
            false,
        ));
    }
    for b in brands.iter().take(MAX_BRANDS) {
        body.push_str("<hr><article>");
        // the next most notable brand as the conversion target
        let to = brands
            .iter()
            .find(|o| o.key != b.key)
            .map(|o| o.key.clone());
        match brand_page(model, &b.key, &BrandParams { category: None, to }, false) {
            Ok(html) => body.push_str(&html),
            Err(e) => body.push_str(&format!(
                "<p class=\"error\">{}</p>",
                super::html::esc(&e.to_string())
            )),
        }
        body.push_str("</article>");
    }
    body.push_str("<hr>");
    body.push_str(&model_page(model, header));
    page("Size report", Nav::Brands, &body, Delivery::Report)
}
