//! What a recommendation is asked about: the product being looked at and what is known
//! about the shopper, as plain borrowed fields. The server builds a [`Query`] from its
//! wire types (`serve::api`); library callers build one from their own data.

/// The product being looked at. Unknown keys fall back on the keys that are known
/// (product -> brand, category); with no known key at all, `sizes` must be given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Product<'a> {
    /// Brand name. Default none.
    pub brand: Option<&'a str>,
    /// Product id. Default none (unseen products fall back on brand and category).
    pub product_id: Option<&'a str>,
    /// Category. Default none.
    pub category: Option<&'a str>,
    /// Size labels on offer. Default none: the sizes seen for the product in training.
    pub sizes: Option<Vec<&'a str>>,
    /// Size system of the labels (`us`, `eu`, `letter`, ...). Default none: inferred
    /// from each label.
    pub size_system: Option<&'a str>,
}

/// A past purchase and what became of it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Purchase<'a> {
    /// Brand name. Default none.
    pub brand: Option<&'a str>,
    /// Product id. Default none.
    pub product_id: Option<&'a str>,
    /// Category. Default none.
    pub category: Option<&'a str>,
    /// Size label bought.
    pub size: &'a str,
    /// Size system of the label. Default none.
    pub size_system: Option<&'a str>,
    /// What became of it (`kept`, `fit`, `too_small`, `returned_too_large`, ...).
    pub outcome: &'a str,
}

/// "I wear M at Acme": a size the shopper says fits them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Reference<'a> {
    /// Brand name. Default none.
    pub brand: Option<&'a str>,
    /// Category. Default none.
    pub category: Option<&'a str>,
    /// Size label worn.
    pub size: &'a str,
    /// Size system of the label. Default none.
    pub size_system: Option<&'a str>,
}

/// A body feature value: a number (height, weight) or a category (body type).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Feature<'a> {
    /// Numeric.
    Number(f64),
    /// Categorical.
    Text(&'a str),
}

/// Everything known about the shopper; all of it optional (an empty shopper gets the
/// population's answer).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Shopper<'a> {
    /// A customer id seen in training. Default none.
    pub customer_id: Option<&'a str>,
    /// Past purchases with outcomes. Default empty.
    pub history: Vec<Purchase<'a>>,
    /// Reference sizes the shopper says they wear. Default empty.
    pub reference: Vec<Reference<'a>>,
    /// Body features by name, as in training (`height_in`, `body_type`, ...), each name
    /// once. Default empty.
    pub features: Vec<(&'a str, Feature<'a>)>,
}

impl<'a> Shopper<'a> {
    /// The value of body feature `name`, if given.
    pub fn feature(&self, name: &str) -> Option<Feature<'a>> {
        self.features
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, v)| v)
    }
}

/// One recommendation question: which size of `product` for `shopper`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query<'a> {
    /// The product.
    pub product: Product<'a>,
    /// The shopper.
    pub shopper: Shopper<'a>,
}
