//! The `POST /v1/recommend` answer as JSON, written straight from a borrowed
//! [`RecommendationView`]: byte for byte what serde writes for the owned
//! [`RecommendResponse`](super::RecommendResponse), without building it.

use crate::model::RecommendationView;
use crate::serve::error::ApiError;

/// The JSON of a [`RecommendResponse`](super::RecommendResponse) without building
/// one, byte for byte what serde writes for it (`model_id` first, then the
/// recommendation's fields as `#[serde(flatten)]` puts them; tested), with the keys as
/// constants.
pub fn recommend_json(model_id: &str, r: &RecommendationView<'_>) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(512 + 96 * r.sizes.len() + r.explanation.len());
    write_recommendation(&mut out, model_id, r).map_err(|e| ApiError::Internal {
        message: format!("cannot serialise the answer: {e}"),
    })?;
    Ok(out)
}

/// A JSON string: quoted as is when nothing in it needs escaping (the common case:
/// labels, level words, ids), else escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if super::fastjson::first_special(s.as_bytes()) == s.len() {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(out, s)
    }
}

fn write_recommendation(
    out: &mut Vec<u8>,
    model_id: &str,
    r: &RecommendationView<'_>,
) -> Result<(), serde_json::Error> {
    // numbers through serde_json: its float formatting
    fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> serde_json::Result<()> {
        serde_json::to_writer(out, v)
    }
    let chosen = r.chosen().ok_or_else(|| {
        <serde_json::Error as serde::ser::Error>::custom("a recommendation without sizes")
    })?;
    out.extend_from_slice(b"{\"model_id\":");
    json_str(out, model_id)?;
    out.extend_from_slice(b",\"recommended_size\":");
    json_str(out, chosen.size)?;
    out.extend_from_slice(b",\"fit_probability\":");
    json(out, &chosen.probs[1])?;
    out.extend_from_slice(b",\"sizes\":[");
    for (i, s) in r.sizes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"size\":");
        json_str(out, s.size)?;
        out.extend_from_slice(b",\"p_small\":");
        json(out, &s.probs[0])?;
        out.extend_from_slice(b",\"p_fit\":");
        json(out, &s.probs[1])?;
        out.extend_from_slice(b",\"p_large\":");
        json(out, &s.probs[2])?;
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"confidence\":{\"level\":");
    json_str(out, r.level)?;
    out.extend_from_slice(b",\"score\":");
    json(out, &r.score)?;
    out.extend_from_slice(b",\"shopper_size_sd\":");
    json(out, &r.shopper_size_sd)?;
    out.extend_from_slice(b",\"basis\":[");
    for (i, b) in r.basis.as_slice().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_str(out, b)?;
    }
    out.extend_from_slice(b"]},\"brand_fit\":");
    match (r.brand_json, &r.brand_fit) {
        (Some(ready), _) => out.extend_from_slice(ready.as_bytes()),
        (None, profile) => json(out, profile)?,
    }
    out.extend_from_slice(b",\"explanation\":");
    json_str(out, &r.explanation)?;
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::FitProfile;
    use crate::serve::api::RecommendResponse;

    #[test]
    fn recommend_json_is_what_serde_writes() {
        use crate::model::{Basis, SizeOddsView};
        let profile = FitProfile {
            key: "Acme \"Co\"".into(),
            brand: Some("Größe".into()),
            offset: -0.25,
            se: 0.1,
            interval: [-0.45, -0.05],
            n: 12,
            band: 0.0,
            verdict: "runs slightly small".into(),
            advice: "size up".into(),
            score: 0.15,
        };
        let ready = serde_json::to_string(&profile).unwrap();
        let view = RecommendationView {
            sizes: vec![
                SizeOddsView {
                    size: "S",
                    probs: [0.7, 0.3, 1e-300],
                },
                SizeOddsView {
                    size: "M\n\"x\\",
                    probs: [0.1, f64::NAN, 0.1],
                },
                SizeOddsView {
                    size: "FR 42",
                    probs: [0.05, 0.9, 0.05],
                },
            ],
            best: 2,
            level: "high",
            score: 0.5,
            shopper_size_sd: 0.25,
            basis: ["history", "features"].into_iter().collect(),
            brand_fit: Some(&profile),
            brand_json: Some(&ready),
            explanation: "Acme runs small; based on the \"M\" you kept we recommend M.".into(),
        };
        let variants = [
            view.clone(),
            // the profile serialised on the spot (no ready JSON)
            RecommendationView {
                brand_json: None,
                ..view.clone()
            },
            RecommendationView {
                brand_fit: None,
                brand_json: None,
                basis: Basis::default(),
                best: 0,
                ..view.clone()
            },
        ];
        for v in variants {
            let got = recommend_json("00\tab", &v).unwrap();
            let want = serde_json::to_vec(&RecommendResponse {
                model_id: "00\tab".into(),
                recommendation: v.into(),
            })
            .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }

    #[test]
    fn json_strings_are_what_serde_writes() {
        let cases = [
            "",
            "M",
            "EU 38",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "\u{1f}",
            " ",
            "Größe",
            "日本",
            "\u{7f}",
            "emoji 🙂",
            "new\nline",
        ];
        for c in cases {
            let mut got = Vec::new();
            json_str(&mut got, c).unwrap();
            assert_eq!(got, serde_json::to_vec(c).unwrap(), "{c:?}");
        }
    }
}
