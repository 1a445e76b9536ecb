//! Request bodies of `POST /v1/recommend` (and each batch item): the owned types (with
//! their OpenAPI schemas), the same shapes borrowing their strings from the body (what the
//! server parses), and [`RecommendRequestRef::to_query`], the model's [`Query`].

use crate::model::query::{self, Query};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The product being looked at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductQuery {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Product id (optional; unseen products fall back on brand and category).
    #[serde(default)]
    pub product_id: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Sizes on offer (labels); default: the sizes seen for the product in training.
    #[serde(default)]
    pub sizes: Option<Vec<String>>,
    /// Size system of the labels (optional; e.g. `us`, `eu`, `letter`).
    #[serde(default)]
    pub size_system: Option<String>,
}

/// A past purchase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastPurchase {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Product id.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Size label bought.
    pub size: String,
    /// Size system of the label.
    #[serde(default)]
    pub size_system: Option<String>,
    /// What became of it (`kept`, `fit`, `too_small`, `returned_too_large`, ...).
    pub outcome: String,
}

/// "I wear M at Acme".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReferenceSize {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Size label worn.
    pub size: String,
    /// Size system of the label.
    #[serde(default)]
    pub size_system: Option<String>,
}

/// A body feature value: a number or a category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeatureValue {
    /// Numeric (height, weight, ...).
    Number(f64),
    /// Categorical (body type, ...).
    Text(String),
}

/// Everything the request knows about the shopper.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shopper {
    /// A customer id seen in training.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Past purchases with outcomes.
    #[serde(default)]
    pub history: Vec<PastPurchase>,
    /// Reference sizes the shopper says they wear.
    #[serde(default)]
    pub reference: Vec<ReferenceSize>,
    /// Body features by name, as in training (`height_in`, `body_type`, ...).
    #[serde(default)]
    pub features: BTreeMap<String, FeatureValue>,
}

/// A request string: borrowed from the request body when it has no escapes, owned
/// otherwise (deserialising a [`ShopperRef`] then allocates nothing per string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text of an optional field.
    pub fn opt<'s>(t: &'s Option<Text<'_>>) -> Option<&'s str> {
        t.as_ref().map(Text::as_str)
    }

    fn of(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn text(t: &Option<String>) -> Option<Text<'_>> {
    t.as_deref().map(Text::of)
}

/// [`ProductQuery`] borrowing its strings (the server parses request bodies into this).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ProductQueryRef<'a> {
    /// Brand name.
    #[serde(default, borrow)]
    pub brand: Option<Text<'a>>,
    /// Product id.
    #[serde(default, borrow)]
    pub product_id: Option<Text<'a>>,
    /// Category.
    #[serde(default, borrow)]
    pub category: Option<Text<'a>>,
    /// Sizes on offer; default: the product's sizes in training.
    #[serde(default, borrow)]
    pub sizes: Option<Vec<Text<'a>>>,
    /// Size system of the labels.
    #[serde(default, borrow)]
    pub size_system: Option<Text<'a>>,
}

/// [`PastPurchase`] borrowing its strings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PastPurchaseRef<'a> {
    /// Brand name.
    #[serde(default, borrow)]
    pub brand: Option<Text<'a>>,
    /// Product id.
    #[serde(default, borrow)]
    pub product_id: Option<Text<'a>>,
    /// Category.
    #[serde(default, borrow)]
    pub category: Option<Text<'a>>,
    /// Size label bought.
    #[serde(borrow)]
    pub size: Text<'a>,
    /// Size system of the label.
    #[serde(default, borrow)]
    pub size_system: Option<Text<'a>>,
    /// What became of it.
    #[serde(borrow)]
    pub outcome: Text<'a>,
}

/// [`ReferenceSize`] borrowing its strings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ReferenceSizeRef<'a> {
    /// Brand name.
    #[serde(default, borrow)]
    pub brand: Option<Text<'a>>,
    /// Category.
    #[serde(default, borrow)]
    pub category: Option<Text<'a>>,
    /// Size label worn.
    #[serde(borrow)]
    pub size: Text<'a>,
    /// Size system of the label.
    #[serde(default, borrow)]
    pub size_system: Option<Text<'a>>,
}

/// [`Shopper`] borrowing its strings (features stay owned: few, and untagged).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ShopperRef<'a> {
    /// A customer id seen in training.
    #[serde(default, borrow)]
    pub customer_id: Option<Text<'a>>,
    /// Past purchases with outcomes.
    #[serde(default, borrow)]
    pub history: Vec<PastPurchaseRef<'a>>,
    /// Reference sizes.
    #[serde(default, borrow)]
    pub reference: Vec<ReferenceSizeRef<'a>>,
    /// Body features by name.
    #[serde(default)]
    pub features: Cow<'a, BTreeMap<String, FeatureValue>>,
}

impl ProductQuery {
    /// A borrowed view.
    pub fn view(&self) -> ProductQueryRef<'_> {
        ProductQueryRef {
            brand: text(&self.brand),
            product_id: text(&self.product_id),
            category: text(&self.category),
            sizes: self
                .sizes
                .as_ref()
                .map(|v| v.iter().map(|s| Text::of(s)).collect()),
            size_system: text(&self.size_system),
        }
    }
}

impl Shopper {
    /// A borrowed view.
    pub fn view(&self) -> ShopperRef<'_> {
        ShopperRef {
            customer_id: text(&self.customer_id),
            history: self
                .history
                .iter()
                .map(|h| PastPurchaseRef {
                    brand: text(&h.brand),
                    product_id: text(&h.product_id),
                    category: text(&h.category),
                    size: Text::of(&h.size),
                    size_system: text(&h.size_system),
                    outcome: Text::of(&h.outcome),
                })
                .collect(),
            reference: self
                .reference
                .iter()
                .map(|r| ReferenceSizeRef {
                    brand: text(&r.brand),
                    category: text(&r.category),
                    size: Text::of(&r.size),
                    size_system: text(&r.size_system),
                })
                .collect(),
            features: Cow::Borrowed(&self.features),
        }
    }
}

/// `POST /v1/recommend` body: the product being looked at and what is known about the shopper.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendRequest {
    /// The product: brand, optional product id, category, sizes on offer.
    pub product: ProductQuery,
    /// The shopper: any of a known customer id, past purchases, reference sizes, body features.
    #[serde(default)]
    pub shopper: Shopper,
}

impl RecommendRequest {
    /// A borrowed view.
    pub fn view(&self) -> RecommendRequestRef<'_> {
        RecommendRequestRef {
            product: self.product.view(),
            shopper: self.shopper.view(),
        }
    }
}

/// [`RecommendRequest`] borrowing its strings from the request body: what
/// `POST /v1/recommend` parses (same JSON shape and defaults).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RecommendRequestRef<'a> {
    /// The product.
    #[serde(borrow)]
    pub product: ProductQueryRef<'a>,
    /// The shopper.
    #[serde(default, borrow)]
    pub shopper: ShopperRef<'a>,
}

fn opt_str<'s>(t: &'s Option<Text<'_>>) -> Option<&'s str> {
    Text::opt(t)
}

impl RecommendRequestRef<'_> {
    /// The model's question: the same fields, borrowed from this request.
    pub fn to_query(&self) -> Query<'_> {
        Query {
            product: self.product.to_query(),
            shopper: self.shopper.to_query(),
        }
    }
}

impl ProductQueryRef<'_> {
    /// The model's product: the same fields, borrowed.
    pub fn to_query(&self) -> query::Product<'_> {
        query::Product {
            brand: opt_str(&self.brand),
            product_id: opt_str(&self.product_id),
            category: opt_str(&self.category),
            sizes: self
                .sizes
                .as_ref()
                .map(|v| v.iter().map(Text::as_str).collect()),
            size_system: opt_str(&self.size_system),
        }
    }
}

impl ShopperRef<'_> {
    /// The model's shopper: the same fields, borrowed.
    pub fn to_query(&self) -> query::Shopper<'_> {
        query::Shopper {
            customer_id: opt_str(&self.customer_id),
            history: self
                .history
                .iter()
                .map(|h| query::Purchase {
                    brand: opt_str(&h.brand),
                    product_id: opt_str(&h.product_id),
                    category: opt_str(&h.category),
                    size: h.size.as_str(),
                    size_system: opt_str(&h.size_system),
                    outcome: h.outcome.as_str(),
                })
                .collect(),
            reference: self
                .reference
                .iter()
                .map(|r| query::Reference {
                    brand: opt_str(&r.brand),
                    category: opt_str(&r.category),
                    size: r.size.as_str(),
                    size_system: opt_str(&r.size_system),
                })
                .collect(),
            features: self
                .features
                .iter()
                .map(|(name, v)| {
                    let v = match v {
                        FeatureValue::Number(x) => query::Feature::Number(*x),
                        FeatureValue::Text(t) => query::Feature::Text(t.as_str()),
                    };
                    (name.as_str(), v)
                })
                .collect(),
        }
    }
}
