//! Label parsing and rendering tests: every accepted form, every rejection, and the

//! round trip between `parse_size` and `label_for`.
use super::*;
use SizeSystem::*;

fn p(label: &str) -> SizeLabel {
    parse_size(label, None).unwrap_or_else(|e| panic!("{label}: {e}"))
}
fn pc(label: &str, col: &str) -> SizeLabel {
    parse_size(label, Some(col)).unwrap_or_else(|e| panic!("{label} [{col}]: {e}"))
}
fn check(l: &SizeLabel, system: SizeSystem, pos: f64, sec: Option<f64>, canonical: &str) {
    assert_eq!(l.system, system, "{l:?}");
    assert_eq!(l.pos, pos, "{l:?}");
    assert_eq!(l.secondary, sec, "{l:?}");
    assert_eq!(l.canonical, canonical, "{l:?}");
}
fn bad(label: &str, col: Option<&str>) -> LabelError {
    match parse_size(label, col) {
        Ok(l) => panic!("{label:?} should fail, got {l:?}"),
        Err(e) => e,
    }
}

#[test]
fn letters_all_spellings() {
    let cases: &[(&str, f64, &str)] = &[
        ("4XS", -5.0, "4XS"),
        ("XXXXS", -5.0, "4XS"),
        ("3XS", -4.0, "3XS"),
        ("XXXS", -4.0, "3XS"),
        ("XXS", -3.0, "XXS"),
        ("2XS", -3.0, "XXS"),
        ("XS", -2.0, "XS"),
        ("S", -1.0, "S"),
        ("M", 0.0, "M"),
        ("L", 1.0, "L"),
        ("XL", 2.0, "XL"),
        ("XXL", 3.0, "XXL"),
        ("2XL", 3.0, "XXL"),
        ("XXXL", 4.0, "3XL"),
        ("3XL", 4.0, "3XL"),
        ("4XL", 5.0, "4XL"),
        ("XXXXL", 5.0, "4XL"),
        ("5XL", 6.0, "5XL"),
        ("xl", 2.0, "XL"),
        (" x l ", 2.0, "XL"),
        ("Small", -1.0, "S"),
        ("MEDIUM", 0.0, "M"),
        ("medium", 0.0, "M"),
        ("Med", 0.0, "M"),
        ("Large", 1.0, "L"),
        ("X-Large", 2.0, "XL"),
        ("Extra Large", 2.0, "XL"),
        ("Extra Small", -2.0, "XS"),
        ("extra-extra-large", 3.0, "XXL"),
        ("XX-Large", 3.0, "XXL"),
        ("2X-Large", 3.0, "XXL"),
        ("lg", 1.0, "L"),
        ("SM", -1.0, "S"),
        ("XLG", 2.0, "XL"),
    ];
    for &(label, pos, canon) in cases {
        check(&p(label), Letter, pos, None, canon);
    }
}

#[test]
fn plus_sizes() {
    check(&p("1X"), Letter, 2.0, None, "1X");
    check(&p("2x"), Letter, 3.0, None, "2X");
    check(&p("3X"), Letter, 4.0, None, "3X");
    check(&p("4X"), Letter, 5.0, None, "4X");
    check(&p("5X"), Letter, 6.0, None, "5X");
    assert_eq!(p("1X").pos, p("XL").pos);
    assert_ne!(p("1X").canonical, p("XL").canonical);
    assert!(bad("6X", None).reason.contains("1X to 5X"));
    bad("0X", None);
}

#[test]
fn bad_letters() {
    for l in [
        "XXLL", "6XL", "XXXXXXL", "5XS", "XM", "2M", "X", "XX", "SL", "0XL",
    ] {
        let e = bad(l, None);
        assert!(e.reason.contains("expected"), "{l}: {}", e.reason);
    }
    assert!(bad("6XL", None).reason.contains("4XS to 5XL"));
}

#[test]
fn letters_ignore_the_column() {
    check(&pc("M", "us"), Letter, 0.0, None, "M");
    check(&pc("XL", "shoe_eu"), Letter, 2.0, None, "XL");
    check(&pc("2XL", "letter"), Letter, 3.0, None, "XXL");
}

#[test]
fn one_size() {
    for l in [
        "one size",
        "ONE SIZE",
        "onesize",
        "one-size",
        "OS",
        "o/s",
        "OSFA",
        "One Size Fits All",
        "uni",
    ] {
        check(&p(l), OneSize, 0.0, None, "ONE SIZE");
    }
    check(&pc("OS", "one_size"), OneSize, 0.0, None, "ONE SIZE");
    assert!(bad("8", Some("one_size")).reason.contains("one_size"));
}

#[test]
fn jeans_forms() {
    for l in [
        "32x30", "32X30", "32 x 30", "32/30", "W32 L30", "W32L30", "w32 l30", "32W 30L", "32w30l",
        "W32/L30",
    ] {
        check(&p(l), Jeans, 32.0, Some(30.0), "32x30");
    }
    check(&p("W32"), Jeans, 32.0, None, "W32");
    check(&p("W 34"), Jeans, 34.0, None, "W34");
    // Jeans regardless of the column.
    check(&pc("30x32", "us"), Jeans, 30.0, Some(32.0), "30x32");
    check(&pc("W30", "shoe_eu"), Jeans, 30.0, None, "W30");
    // Column jeans + bare number: waist only.
    check(&pc("33", "jeans"), Jeans, 33.0, None, "W33");
    assert_eq!(p("30x32").cmp_order(&p("32x32")), std::cmp::Ordering::Less);
    assert_eq!(p("32x30").cmp_order(&p("32x32")), std::cmp::Ordering::Less);
    assert_eq!(p("W32").cmp_order(&p("32x30")), std::cmp::Ordering::Less);
    assert!(bad("5x30", None).reason.contains("waist"));
    assert!(bad("32x99", None).reason.contains("length"));
    assert!(bad("32.5", Some("jeans")).reason.contains("whole"));
    // "32W" alone is a US women's plus-style number, not jeans.
    check(&p("32W"), Numeric, 32.0, None, "32W");
    check(&pc("32W", "us"), Us, 16.0, None, "US 32W");
}

#[test]
fn us_sizes() {
    check(&pc("00", "us"), Us, -1.0, None, "US 00");
    check(&pc("0", "us"), Us, 0.0, None, "US 0");
    check(&pc("2", "US"), Us, 1.0, None, "US 2");
    check(&pc("8", "us"), Us, 4.0, None, "US 8");
    check(&pc("24", "us"), Us, 12.0, None, "US 24");
    check(&pc("3", "us"), Us, 1.5, None, "US 3");
    check(&p("US 8"), Us, 4.0, None, "US 8");
    check(&p("us8"), Us, 4.0, None, "US 8");
    check(&p("US 00"), Us, -1.0, None, "US 00");
    check(&p("US 8P"), Us, 4.0, None, "US 8P");
    check(&p("US 8 Petite"), Us, 4.0, None, "US 8P");
    check(&pc("10T", "us"), Us, 5.0, None, "US 10T");
    check(&pc("16W", "us"), Us, 8.0, None, "US 16W");
    check(&p("Size US 8"), Us, 4.0, None, "US 8");
    check(&p("US-8"), Us, 4.0, None, "US 8");
    assert!(bad("US 8.5", None).reason.contains("whole"));
    assert!(bad("US 42", None).reason.contains("range"));
    assert!(bad("US", None).reason.contains("no size number"));
}

#[test]
fn other_clothing_systems() {
    check(&pc("10", "uk"), Uk, 5.0, None, "UK 10");
    check(&p("UK 10"), Uk, 5.0, None, "UK 10");
    check(&p("GB 12"), Uk, 6.0, None, "UK 12");
    check(&pc("38", "eu"), Eu, 19.0, None, "EU 38");
    check(&pc("38", "DE"), Eu, 19.0, None, "EU 38");
    check(&p("EU 38"), Eu, 19.0, None, "EU 38");
    check(&p("DE 38"), Eu, 19.0, None, "EU 38");
    check(&p("IT 42"), It, 21.0, None, "IT 42");
    check(&pc("42", "it"), It, 21.0, None, "IT 42");
    check(&p("FR 40"), Fr, 20.0, None, "FR 40");
    check(&pc("40", "fr"), Fr, 20.0, None, "FR 40");
    check(&p("JP 9"), Jp, 4.5, None, "JP 9");
    check(&pc("9", "jp"), Jp, 4.5, None, "JP 9");
    check(&p("EU 38T"), Eu, 19.0, None, "EU 38T");
    assert!(bad("EU 10", None).reason.contains("range"));
    assert!(bad("IT 20", None).reason.contains("range"));
    assert!(bad("00", Some("uk")).reason.contains("US size"));
}

#[test]
fn prefix_beats_column() {
    check(&pc("US 8", "uk"), Us, 4.0, None, "US 8");
    check(&pc("EU 38", "letter"), Eu, 19.0, None, "EU 38");
    check(&pc("US 8", "numeric"), Us, 4.0, None, "US 8");
    // A shoe column keeps a prefixed label a shoe size.
    check(&pc("US 8.5", "shoe_eu"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("IT 42", "shoe_eu"), It, 21.0, None, "IT 42");
}

#[test]
fn shoes() {
    check(&pc("8.5", "shoe_us"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("8 1/2", "us_shoe"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("8½", "shoes_us"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("8 ½", "shoe-us"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("8-1/2", "shoe us"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("9", "shoe_us"), ShoeUs, 9.0, None, "US 9 shoe");
    check(&pc("9.0", "shoe_us"), ShoeUs, 9.0, None, "US 9 shoe");
    check(&p("US shoe 8.5"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&p("US 8.5 shoe"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&p("us 8 1/2 shoes"), ShoeUs, 8.5, None, "US 8.5 shoe");
    check(&pc("7", "shoe_uk"), ShoeUk, 7.0, None, "UK 7 shoe");
    check(&p("UK shoe 7.5"), ShoeUk, 7.5, None, "UK 7.5 shoe");
    check(&pc("42", "shoe_eu"), ShoeEu, 42.0, None, "EU 42 shoe");
    check(&pc("42.5", "eu_shoe"), ShoeEu, 42.5, None, "EU 42.5 shoe");
    check(&pc("42,5", "shoe_eu"), ShoeEu, 42.5, None, "EU 42.5 shoe");
    check(&p("EU shoe 42"), ShoeEu, 42.0, None, "EU 42 shoe");
    check(&p("DE 42 shoe"), ShoeEu, 42.0, None, "EU 42 shoe");
    // shoe word + region column
    check(&pc("8.5 shoe", "us"), ShoeUs, 8.5, None, "US 8.5 shoe");
    assert!(p("US 8.5 shoe").cmp_order(&p("US 9 shoe")).is_lt());
    assert!(bad("42 2/3", Some("shoe_eu")).reason.contains("half"));
    assert!(bad("8.25", Some("shoe_us")).reason.contains("half"));
    assert!(bad("shoe 8", None).reason.contains("region"));
    assert!(bad("IT shoe 40", None).reason.contains("no it shoe"));
    assert!(bad("EU 60 shoe", None).reason.contains("range"));
    assert!(bad("9W", Some("shoe_us")).reason.contains("suffix"));
}

#[test]
fn bare_numbers() {
    check(&p("8"), Numeric, 8.0, None, "8");
    check(&p("8.5"), Numeric, 8.5, None, "8.5");
    check(&p("8.0"), Numeric, 8.0, None, "8");
    check(&p("8 1/2"), Numeric, 8.5, None, "8.5");
    check(&p("0"), Numeric, 0.0, None, "0");
    check(&p("120"), Numeric, 120.0, None, "120");
    check(&p("8P"), Numeric, 8.0, None, "8P");
    check(&pc("8", "numeric"), Numeric, 8.0, None, "8");
    check(&pc("8", "num"), Numeric, 8.0, None, "8");
    check(&pc("8", ""), Numeric, 8.0, None, "8");
    check(&pc("8", "  "), Numeric, 8.0, None, "8");
    check(&p("Size 8"), Numeric, 8.0, None, "8");
    assert!(bad("00", None).reason.contains("US"));
    assert!(bad("8", Some("letter")).reason.contains("letter"));
}

#[test]
fn garbage_is_rejected_with_a_reason() {
    for l in [
        "",
        "   ",
        "abc",
        "XXLL",
        "-3",
        "US -3",
        "NaN",
        "inf",
        "1e9",
        "1000000000",
        "999",
        "8.",
        ".5",
        "8 9",
        "US UK 8",
        "8 US",
        "P8",
        "½",
        "8.5½",
        "é",
        "32x",
        "x30",
        "S/M",
        "\u{0}",
        "8 P P",
    ] {
        let e = bad(l, None);
        assert!(!e.reason.is_empty());
        assert_eq!(e.label, l);
    }
    assert!(bad("", None).reason.contains("empty"));
    assert!(bad("-3", None).reason.contains("negative"));
    assert!(bad("1e9", None).reason.contains("expected"));
    assert!(bad(&"M".repeat(100), None).reason.contains("too long"));
}

#[test]
fn unknown_column_system_is_an_error() {
    let e = bad("M", Some("martian"));
    assert!(e.reason.contains("martian"));
    assert!(e.reason.contains("shoe_eu"));
}

#[test]
fn parse_system_names() {
    let cases: &[(&str, SizeSystem)] = &[
        ("letter", Letter),
        ("ALPHA", Letter),
        ("letters", Letter),
        ("intl", Letter),
        ("us", Us),
        ("US", Us),
        (" uk ", Uk),
        ("eu", Eu),
        ("de", Eu),
        ("it", It),
        ("fr", Fr),
        ("jp", Jp),
        ("jeans", Jeans),
        ("shoe_us", ShoeUs),
        ("us_shoe", ShoeUs),
        ("Shoe-US", ShoeUs),
        ("shoes us", ShoeUs),
        ("shoe_uk", ShoeUk),
        ("uk-shoe", ShoeUk),
        ("shoe_eu", ShoeEu),
        ("EU_SHOE", ShoeEu),
        ("one_size", OneSize),
        ("onesize", OneSize),
        ("one size", OneSize),
        ("numeric", Numeric),
        ("num", Numeric),
    ];
    for &(name, sys) in cases {
        assert_eq!(parse_system(name), Some(sys), "{name}");
    }
    for sys in SizeSystem::ALL {
        assert_eq!(parse_system(sys.as_str()), Some(sys));
    }
    assert_eq!(parse_system(""), None);
    assert_eq!(parse_system("   "), None);
    assert_eq!(parse_system("mars"), None);
    assert_eq!(parse_system("a_very_long_system_name_indeed"), None);
}

#[test]
fn label_for_renders_and_rejects() {
    assert_eq!(label_for(Letter, 0.0, None).as_deref(), Some("M"));
    assert_eq!(label_for(Letter, -5.0, None).as_deref(), Some("4XS"));
    assert_eq!(label_for(Letter, 3.0, None).as_deref(), Some("XXL"));
    assert_eq!(label_for(Letter, 6.0, None).as_deref(), Some("5XL"));
    assert_eq!(label_for(Letter, 7.0, None), None);
    assert_eq!(label_for(Letter, 0.5, None), None);
    assert_eq!(label_for(Us, -1.0, None).as_deref(), Some("US 00"));
    assert_eq!(label_for(Us, 4.0, None).as_deref(), Some("US 8"));
    assert_eq!(label_for(Us, 1.5, None).as_deref(), Some("US 3"));
    assert_eq!(label_for(Us, -0.5, None), None);
    assert_eq!(label_for(Us, 1.25, None), None);
    assert_eq!(label_for(Eu, 19.0, None).as_deref(), Some("EU 38"));
    assert_eq!(label_for(Jp, 4.5, None).as_deref(), Some("JP 9"));
    assert_eq!(label_for(Jeans, 32.0, Some(30.0)).as_deref(), Some("32x30"));
    assert_eq!(label_for(Jeans, 32.0, None).as_deref(), Some("W32"));
    assert_eq!(label_for(Jeans, 32.0, Some(30.5)), None);
    assert_eq!(label_for(ShoeUs, 8.5, None).as_deref(), Some("US 8.5 shoe"));
    assert_eq!(label_for(ShoeEu, 42.0, None).as_deref(), Some("EU 42 shoe"));
    assert_eq!(label_for(OneSize, 0.0, None).as_deref(), Some("ONE SIZE"));
    assert_eq!(label_for(OneSize, 1.0, None), None);
    assert_eq!(label_for(Numeric, 8.5, None).as_deref(), Some("8.5"));
    assert_eq!(label_for(Numeric, f64::NAN, None), None);
    assert_eq!(label_for(Us, 4.0, Some(1.0)), None);
}

#[test]
fn pos_range_matches_label_for() {
    for sys in SizeSystem::ALL {
        let r = pos_range(sys);
        assert!(label_for(sys, r.min, None).is_some(), "{sys:?} min");
        assert!(label_for(sys, r.max, None).is_some(), "{sys:?} max");
        assert!(
            label_for(sys, r.max + r.step, None).is_none(),
            "{sys:?} above"
        );
    }
    assert_eq!(pos_range(Us).min, 0.0);
    assert_eq!(pos_range(Jeans).secondary, Some((18.0, 44.0)));
}
