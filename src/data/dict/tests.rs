//! Tests of the key dictionaries and their indexes.

use super::*;

fn dict(keys: &[&str]) -> Dict {
    keys.iter().collect()
}

#[test]
fn dict_keeps_integers_compact_until_a_text_key() {
    let mut d = Dict::new();
    assert_eq!(d.push("42"), 0);
    assert_eq!(d.push_int(-7), 1);
    assert_eq!(d.as_ints(), Some(&[42i64, -7][..]));
    assert!(d.heap_bytes() <= 64, "two integer keys take a few words");
    assert_eq!(d.push("007"), 2, "leading zeros are text, not 7");
    assert!(d.as_ints().is_none());
    assert_eq!(d.push_int(5), 3);
    assert_eq!(d.names(), vec!["42", "-7", "007", "5"]);
    assert_eq!(d.get(2).as_deref(), Some("007"));
    assert_eq!(d.text_at(1), Some("-7"));
    assert_eq!(d.get(4), None);
    assert_eq!(d.index_of("5"), Some(3));
    assert_eq!(d.index_of("7"), None);
    assert_eq!(d.len(), 4);
}

#[test]
fn dict_equality_and_serde_are_by_text() {
    let a: Dict = ["1", "2", "x"].into_iter().collect();
    let mut b = Dict::new();
    b.push_int(1);
    b.push_int(2);
    b.push("x");
    assert_eq!(a, b);
    let ints: Dict = ["1", "2"].into_iter().collect();
    let mut text = Dict::new();
    text.push("y");
    let mut text2: Dict = ["1", "2"].into_iter().collect();
    text2.make_text();
    assert_eq!(ints, text2, "same keys, different storage");
    assert_ne!(ints, text);
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(json, r#"{"names":["1","2","x"]}"#);
    let back: Dict = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
}

#[test]
fn write_int_matches_to_string() {
    for v in [0i64, 7, -7, 10, 99, -100, i64::MAX, i64::MIN, 1_234_567_890] {
        let mut s = String::from("x");
        write_int(&mut s, v);
        assert_eq!(s, format!("x{v}"));
    }
}

#[test]
fn canonical_int_accepts_only_canonical_text() {
    assert_eq!(canonical_int("42"), Some(42));
    assert_eq!(canonical_int("-7"), Some(-7));
    assert_eq!(canonical_int("0"), Some(0));
    assert_eq!(canonical_int("007"), None);
    assert_eq!(canonical_int("-0"), None);
    assert_eq!(canonical_int("+5"), None);
    assert_eq!(canonical_int(""), None);
    assert_eq!(canonical_int("99999999999999999999"), None);
}

#[test]
fn index_finds_integer_and_text_ids() {
    let ints = dict(&["42", "-7", "1000000000000"]);
    assert!(ints.as_ints().is_some());
    let ix = DictIndex::build(&ints);
    assert_eq!(ix.len(), 3);
    assert_eq!(ix.find(&ints, "42"), Some(0));
    assert_eq!(ix.find(&ints, "-7"), Some(1));
    assert_eq!(ix.find_int(&ints, 1_000_000_000_000), Some(2));
    // not canonical integers: not the same keys
    for unknown in ["042", "+42", "-0", "", "x", "43"] {
        assert_eq!(ix.find(&ints, unknown), None, "{unknown}");
    }
    assert_eq!(ix.find_int(&ints, 43), None);

    let text = dict(&["a", "42", "bb", ""]);
    assert!(text.as_ints().is_none());
    let ix = DictIndex::build(&text);
    for (i, k) in ["a", "42", "bb", ""].iter().enumerate() {
        assert_eq!(ix.find(&text, k), Some(i as u32), "{k}");
    }
    assert_eq!(ix.find_int(&text, 42), Some(1), "integer 42 is the text 42");
    assert_eq!(ix.find(&text, "b"), None);
    assert_eq!(ix.find_int(&text, 7), None);
    // a later duplicate wins, as with a map
    let dup = dict(&["x", "y", "x"]);
    let ix = DictIndex::build(&dup);
    assert_eq!((ix.len(), ix.find(&dup, "x")), (2, Some(2)));
    // empty
    let ix = DictIndex::build(&Dict::new());
    assert!(ix.is_empty());
    assert_eq!(ix.find(&Dict::new(), "1"), None);
}

#[test]
fn compact_dict_serde_hand_checked_bytes() {
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct W(#[serde(with = "compact_dict")] Dict);
    // Ints: variant 0, length 3, zigzag varints 1 -> 2, -2 -> 3, 300 -> 600 = d8 04
    let ints = W(dict(&["1", "-2", "300"]));
    let bytes = postcard::to_stdvec(&ints).unwrap();
    assert_eq!(bytes, vec![0, 3, 2, 3, 0xd8, 0x04]);
    let back: W = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, ints);
    assert!(back.0.as_ints().is_some());
    // Text: variant 1, length 2, then each key as length + bytes
    let text = W(dict(&["a", "bc"]));
    let bytes = postcard::to_stdvec(&text).unwrap();
    assert_eq!(bytes, vec![1, 2, 1, b'a', 2, b'b', b'c']);
    assert_eq!(postcard::from_bytes::<W>(&bytes).unwrap(), text);
    // empty, and JSON (self-describing formats work too)
    let empty = W(Dict::new());
    assert_eq!(postcard::to_stdvec(&empty).unwrap(), vec![0, 0]);
    let json = serde_json::to_string(&text).unwrap();
    assert_eq!(json, r#"{"Text":["a","bc"]}"#);
    assert_eq!(serde_json::from_str::<W>(&json).unwrap(), text);
    assert_eq!(
        serde_json::from_str::<W>(r#"{"Ints":[4,-5]}"#).unwrap(),
        W(dict(&["4", "-5"]))
    );
    assert!(serde_json::from_str::<W>(r#"{"Other":[]}"#).is_err());
}

#[test]
fn float_text_drops_integral_fraction() {
    assert_eq!(float_text(8.0), "8");
    assert_eq!(float_text(8.5), "8.5");
    assert_eq!(float_text(-2.0), "-2");
}

#[test]
fn indexed_dict_numbers_keys_in_order_of_first_appearance() {
    let mut d = IndexedDict::default();
    assert_eq!((d.int(9), d.int(-1), d.int(9), d.float(-1.0)), (0, 1, 0, 1));
    assert!(d.dict().as_ints().is_some());
    assert_eq!((d.text("x"), d.text("9"), d.float(2.5)), (2, 0, 3));
    assert_eq!(d.dict().names(), vec!["9", "-1", "x", "2.5"]);
    let ix = DictIndex::build(d.dict());
    for (i, k) in ["9", "-1", "x", "2.5"].iter().enumerate() {
        assert_eq!(ix.find(d.dict(), k), Some(i as u32));
    }
}
