//! A fast parser for the common shape of `POST /v1/recommend` bodies: the known keys
//! only, each at most once, strings without escapes (borrowed from the body), nulls,
//! arrays, and body features as numbers or strings. Anything else (an escape, an
//! unknown or repeated key, a wrong type, trailing text, ...) makes it answer `None`,
//! and the caller parses the body with serde instead, which then decides: so the fast
//! path never changes what a body means, it only skips serde's generic machinery for
//! the bodies it fully understands (tested against serde on random bodies).

use super::request::{
    FeatureValue, PastPurchaseRef, ProductQueryRef, RecommendRequestRef, ReferenceSizeRef,
    ShopperRef, Text,
};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Parse `text` as a recommend request if it is in the supported subset (see the module
/// docs); `None` means "use serde".
pub fn parse_recommend(text: &str) -> Option<RecommendRequestRef<'_>> {
    let mut p = Parser { s: text, i: 0 };
    let mut product = None;
    let mut shopper = None;
    p.object(|p, key| match key {
        "product" if product.is_none() => {
            product = Some(p.product()?);
            Some(())
        }
        "shopper" if shopper.is_none() => {
            shopper = Some(p.shopper()?);
            Some(())
        }
        _ => None,
    })?;
    p.ws();
    if p.i != text.len() {
        return None;
    }
    Some(RecommendRequestRef {
        product: product?,
        shopper: shopper.unwrap_or_default(),
    })
}

/// Index of the first byte of `bytes` that a JSON string cannot hold as is (`"`, `\\`
/// or a control character below 0x20), or `bytes.len()` when there is none: eight
/// bytes at a time.
#[inline(always)]
pub fn first_special(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let slash = x ^ (ONES * u64::from(b'\\'));
        // a byte's high bit is set where it is zero (quote, slash) or below 0x20; the
        // lowest such bit is exact (borrows only run upwards)
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let found = found & (ONES << 7);
        if found != 0 {
            return i + found.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&c) = bytes.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    /// Skip JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// Consume `c` after whitespace.
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    /// A string without escapes or control characters, borrowed.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = self.s.as_bytes().get(start..)?;
        let n = first_special(rest);
        if rest.get(n) != Some(&b'"') {
            return None;
        }
        self.i = start + n + 1;
        self.s.get(start..start + n)
    }

    /// `null` (true) or something else (false, nothing consumed).
    fn null(&mut self) -> bool {
        self.ws();
        if self.s.as_bytes().get(self.i..self.i + 4) == Some(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A string or null.
    fn opt_str(&mut self) -> Option<Option<Text<'a>>> {
        if self.null() {
            return Some(None);
        }
        Some(Some(Text(Cow::Borrowed(self.str()?))))
    }

    /// An object: `field` is called with each key and must consume its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array: `item` parses one element.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.eat(b'[')?;
        // most lists (sizes on offer, past purchases) are short: one allocation
        let mut out = Vec::with_capacity(32);
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(out);
        }
        loop {
            out.push(item(self)?);
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    /// Store an optional string field once.
    fn set(&mut self, slot: &mut Option<Option<Text<'a>>>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(self.opt_str()?);
        Some(())
    }

    /// Store a required string field once.
    fn set_required(&mut self, slot: &mut Option<Text<'a>>) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(Text(Cow::Borrowed(self.str()?)));
        Some(())
    }

    fn product(&mut self) -> Option<ProductQueryRef<'a>> {
        let (mut brand, mut product_id, mut category, mut size_system) = (None, None, None, None);
        let mut sizes: Option<Option<Vec<Text<'a>>>> = None;
        self.object(|p, key| match key {
            "brand" => p.set(&mut brand),
            "product_id" => p.set(&mut product_id),
            "category" => p.set(&mut category),
            "size_system" => p.set(&mut size_system),
            "sizes" if sizes.is_none() => {
                sizes = Some(if p.null() {
                    None
                } else {
                    Some(p.array(|p| Some(Text(Cow::Borrowed(p.str()?))))?)
                });
                Some(())
            }
            _ => None,
        })?;
        Some(ProductQueryRef {
            brand: brand.flatten(),
            product_id: product_id.flatten(),
            category: category.flatten(),
            sizes: sizes.flatten(),
            size_system: size_system.flatten(),
        })
    }

    fn purchase(&mut self) -> Option<PastPurchaseRef<'a>> {
        let (mut brand, mut product_id, mut category, mut size_system) = (None, None, None, None);
        let (mut size, mut outcome) = (None, None);
        self.object(|p, key| match key {
            "brand" => p.set(&mut brand),
            "product_id" => p.set(&mut product_id),
            "category" => p.set(&mut category),
            "size_system" => p.set(&mut size_system),
            "size" => p.set_required(&mut size),
            "outcome" => p.set_required(&mut outcome),
            _ => None,
        })?;
        Some(PastPurchaseRef {
            brand: brand.flatten(),
            product_id: product_id.flatten(),
            category: category.flatten(),
            size: size?,
            size_system: size_system.flatten(),
            outcome: outcome?,
        })
    }

    fn reference(&mut self) -> Option<ReferenceSizeRef<'a>> {
        let (mut brand, mut category, mut size_system, mut size) = (None, None, None, None);
        self.object(|p, key| match key {
            "brand" => p.set(&mut brand),
            "category" => p.set(&mut category),
            "size_system" => p.set(&mut size_system),
            "size" => p.set_required(&mut size),
            _ => None,
        })?;
        Some(ReferenceSizeRef {
            brand: brand.flatten(),
            category: category.flatten(),
            size: size?,
            size_system: size_system.flatten(),
        })
    }

    /// A feature value that is a JSON number, read by serde itself (so it is exactly
    /// what serde's map of [`FeatureValue`]s holds, down to rounding and the sign of 0).
    fn number(&mut self) -> Option<FeatureValue> {
        self.ws();
        let start = self.i;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.i += 1;
        }
        serde_json::from_str::<FeatureValue>(self.s.get(start..self.i)?).ok()
    }

    fn features(&mut self) -> Option<BTreeMap<String, FeatureValue>> {
        let mut out = BTreeMap::new();
        self.object(|p, key| {
            p.ws();
            let value = match p.peek()? {
                b'"' => FeatureValue::Text(p.str()?.to_string()),
                b'-' | b'0'..=b'9' => p.number()?,
                _ => return None,
            };
            // as serde's map: a repeated key keeps the last value
            out.insert(key.to_string(), value);
            Some(())
        })?;
        Some(out)
    }

    fn shopper(&mut self) -> Option<ShopperRef<'a>> {
        let mut customer_id = None;
        let (mut history, mut reference, mut features) = (None, None, None);
        self.object(|p, key| match key {
            "customer_id" => p.set(&mut customer_id),
            "history" if history.is_none() => {
                history = Some(p.array(Self::purchase)?);
                Some(())
            }
            "reference" if reference.is_none() => {
                reference = Some(p.array(Self::reference)?);
                Some(())
            }
            "features" if features.is_none() => {
                features = Some(p.features()?);
                Some(())
            }
            _ => None,
        })?;
        Some(ShopperRef {
            customer_id: customer_id.flatten(),
            history: history.unwrap_or_default(),
            reference: reference.unwrap_or_default(),
            features: Cow::Owned(features.unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use serde_json::{json, Map, Value};

    fn serde(text: &str) -> Option<RecommendRequestRef<'_>> {
        serde_json::from_str(text).ok()
    }

    /// Whenever the fast parser answers, serde answers the same.
    fn check(text: &str) -> bool {
        match parse_recommend(text) {
            Some(fast) => {
                assert_eq!(Some(&fast), serde(text).as_ref(), "{text}");
                true
            }
            None => false,
        }
    }

    fn word(rng: &mut ChaCha8Rng) -> Value {
        let words = [
            "M",
            "XL",
            "32x30",
            "us 8",
            "Acme & Co",
            "kept",
            "Größe",
            "",
            "too_small",
        ];
        json!(words[rng.gen_range(0..words.len())])
    }

    fn maybe(rng: &mut ChaCha8Rng, obj: &mut Map<String, Value>, key: &str) {
        match rng.gen_range(0..3) {
            0 => {}
            1 => {
                obj.insert(key.into(), Value::Null);
            }
            _ => {
                obj.insert(key.into(), word(rng));
            }
        }
    }

    fn random_body(rng: &mut ChaCha8Rng) -> Value {
        let mut product = Map::new();
        for k in ["brand", "product_id", "category", "size_system"] {
            maybe(rng, &mut product, k);
        }
        match rng.gen_range(0..3) {
            0 => {}
            1 => {
                product.insert("sizes".into(), Value::Null);
            }
            _ => {
                let n = rng.gen_range(0..5);
                product.insert("sizes".into(), (0..n).map(|_| word(rng)).collect());
            }
        }
        let mut shopper = Map::new();
        maybe(rng, &mut shopper, "customer_id");
        if rng.gen_bool(0.7) {
            let n = rng.gen_range(0..4);
            let items: Vec<Value> = (0..n)
                .map(|_| {
                    let mut h = Map::new();
                    for k in ["brand", "product_id", "category", "size_system"] {
                        maybe(rng, &mut h, k);
                    }
                    h.insert("size".into(), word(rng));
                    h.insert("outcome".into(), word(rng));
                    Value::Object(h)
                })
                .collect();
            shopper.insert("history".into(), items.into());
        }
        if rng.gen_bool(0.4) {
            let mut r = Map::new();
            maybe(rng, &mut r, "brand");
            maybe(rng, &mut r, "category");
            maybe(rng, &mut r, "size_system");
            r.insert("size".into(), word(rng));
            shopper.insert("reference".into(), json!([r]));
        }
        if rng.gen_bool(0.4) {
            let x: f64 = rng.gen_range(-300.0..300.0);
            shopper.insert(
                "features".into(),
                json!({"height_cm": x, "weight_kg": 71, "body_shape": "straight", "age": -0.0}),
            );
        }
        let mut body = Map::new();
        body.insert("product".into(), Value::Object(product));
        if rng.gen_bool(0.8) {
            body.insert("shopper".into(), Value::Object(shopper));
        }
        Value::Object(body)
    }

    #[test]
    fn first_special_is_the_first_byte_to_escape() {
        let naive = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len())
        };
        assert_eq!(first_special(b""), 0);
        assert_eq!(first_special(b"EU 38\""), 5);
        assert_eq!(first_special(b"returned_too_small\""), 18);
        assert_eq!(first_special("Größe\\".as_bytes()), 7);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // bytes from a small alphabet with every kind: plain ASCII, UTF-8 high bytes,
        // quote, backslash, control characters, the 0x1f / 0x20 edge
        let alphabet = [
            b'a', b'Z', b' ', 0x1f, 0x00, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff, b'!',
        ];
        for _ in 0..20_000 {
            let n = rng.gen_range(0..40);
            let v: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.gen_bool(0.9) {
                        alphabet[rng.gen_range(0..3)]
                    } else {
                        alphabet[rng.gen_range(0..alphabet.len())]
                    }
                })
                .collect();
            assert_eq!(first_special(&v), naive(&v), "{v:?}");
        }
    }

    #[test]
    fn agrees_with_serde_on_random_bodies() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut fast = 0;
        for _ in 0..3000 {
            let body = random_body(&mut rng);
            let compact = body.to_string();
            let pretty = serde_json::to_string_pretty(&body).unwrap_or_default();
            for text in [compact, pretty] {
                if check(&text) {
                    fast += 1;
                }
            }
        }
        // the fast path takes (nearly) all of these: they use only the supported subset
        assert!(fast > 5900, "{fast}");
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        let declined = [
            r#"{"product":{"brand":"A\u0063me"}}"#,
            r#"{"product":{"brand":"Acme","brand":"B"}}"#,
            r#"{"product":{"brand":"Acme","colour":"red"}}"#,
            r#"{"product":{"brand":"Acme"}} x"#,
            r#"{"product":{"brand":"Acme"},"product":{}}"#,
            r#"{"product":null}"#,
            r#"{"shopper":{}}"#,
            r#"{"product":{},"shopper":{"history":null}}"#,
            r#"{"product":{},"shopper":{"history":[{"size":"M"}]}}"#,
            r#"{"product":{},"shopper":{"features":{"h":true}}}"#,
            r#"{"product":{"sizes":["M",]}}"#,
            r#"{"product":{"brand":5}}"#,
            "{\"product\":{\"brand\":\"tab\there\"}}",
            r#"{"product":{"brand":"Acme"}"#,
        ];
        for text in declined {
            assert!(parse_recommend(text).is_none(), "{text}");
        }
        // and a few it takes, as serde reads them
        for text in [
            r#" { "product" : { "sizes" : [ ] } , "shopper" : { } } "#,
            r#"{"product":{"brand":null,"sizes":null},"shopper":{"features":{"a":1,"a":"x"}}}"#,
            r#"{"shopper":{"history":[]},"product":{"product_id":"P1"}}"#,
        ] {
            assert!(check(text), "{text}");
        }
    }
}
