use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn continues_w3c_with_a_new_span() {
    let mut h = headers(&[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")]);
    let span = propagate(&mut h, &Settings::default());
    assert_eq!(span.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_hex().as_deref(), Some("00f067aa0ba902b7"));
    assert!(span.sampled);
    let out = h.get("traceparent").unwrap().to_str().unwrap();
    assert_eq!(
        out,
        format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", span.span_hex())
    );
    assert_ne!(span.span_hex(), "00f067aa0ba902b7");
    assert_eq!(
        h.get("tracestate").unwrap(),
        "congo=t61rcWkgMzE",
        "tracestate passes through"
    );
}

#[test]
fn respects_the_callers_unsampled_flag_and_starts_new_traces() {
    let mut h = headers(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    )]);
    assert!(
        !propagate(
            &mut h,
            &Settings {
                sample_ratio: 1.0,
                ..Default::default()
            }
        )
        .sampled
    );
    let mut h = HeaderMap::new();
    let s = propagate(
        &mut h,
        &Settings {
            sample_ratio: 0.0,
            ..Default::default()
        },
    );
    assert!(!s.sampled && s.parent_id.is_none());
    assert!(h
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("-00"));
    let mut h = HeaderMap::new();
    assert!(propagate(&mut h, &Settings::default()).sampled);
}

#[test]
fn invalid_traceparents_start_a_new_trace() {
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "garbage",
    ] {
        let mut h = headers(&[("traceparent", bad)]);
        let s = propagate(&mut h, &Settings::default());
        assert!(s.parent_id.is_none(), "{bad}");
        assert_ne!(s.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
    }
}

#[test]
fn later_versions_may_append_fields_and_ids_are_never_hpack_indexed() {
    let mut h = headers(&[(
        "traceparent",
        " 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future ",
    )]);
    let s = propagate(&mut h, &Settings::default());
    assert_eq!(s.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s.parent_hex().as_deref(), Some("00f067aa0ba902b7"));
    assert!(h.get("traceparent").unwrap().is_sensitive());
}

#[test]
fn continues_b3_single_and_multi() {
    let mut h = headers(&[(
        "b3",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    )]);
    let s = propagate(&mut h, &Settings::default());
    assert_eq!(s.trace_hex(), "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(s.parent_hex().as_deref(), Some("e457b5a2e4d86bd1"));
    let b3 = h.get("b3").unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        b3,
        format!(
            "80f198ee56343ba864fe8b2a57d3eff7-{}-1-e457b5a2e4d86bd1",
            s.span_hex()
        )
    );
    // The W3C header carries the same trace.
    assert!(h
        .get("traceparent")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("80f198ee56343ba864fe8b2a57d3eff7"));

    let mut h = headers(&[
        ("x-b3-traceid", "463ac35c9f6413ad"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-sampled", "0"),
    ]);
    let s = propagate(&mut h, &Settings::default());
    assert!(!s.sampled);
    assert_eq!(
        h.get("x-b3-traceid").unwrap(),
        "463ac35c9f6413ad",
        "64-bit ids stay 64-bit"
    );
    assert_eq!(h.get("x-b3-parentspanid").unwrap(), "a2fb4a1d1a96d312");
    assert_eq!(
        h.get("x-b3-spanid").unwrap().to_str().unwrap(),
        s.span_hex()
    );
    assert_eq!(h.get("x-b3-sampled").unwrap(), "0");
}

#[test]
fn w3c_wins_over_b3_and_disabled_formats_are_left_alone() {
    let mut h = headers(&[
        ("traceparent", TP),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ]);
    let s = propagate(&mut h, &Settings::default());
    assert_eq!(s.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    let mut h = headers(&[("traceparent", TP)]);
    let s = propagate(
        &mut h,
        &Settings {
            w3c: false,
            b3: true,
            sample_ratio: 1.0,
        },
    );
    assert!(s.parent_id.is_none());
    assert_eq!(
        h.get("traceparent").unwrap(),
        TP,
        "w3c disabled: header untouched"
    );
}

#[test]
fn hex_into_matches_format_for_every_width() {
    for n in [
        0u128,
        1,
        u128::MAX,
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        fastrand::u128(..),
    ] {
        for width in [1usize, 8, 15, 16, 17, 31, 32] {
            let mut out = vec![b'?'; width];
            hex_into(&mut out, n);
            let full = format!("{n:032x}");
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                &full[32 - width..],
                "n={n:x} width={width}"
            );
        }
    }
}

#[test]
fn a_repeated_traceparent_leaves_exactly_one_value() {
    let mut h = headers(&[("traceparent", TP)]);
    h.append(
        "traceparent",
        HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-01"),
    );
    let span = propagate(&mut h, &Settings::default());
    assert_eq!(h.get_all("traceparent").iter().count(), 1);
    assert_eq!(
        span.trace_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "the first value is continued"
    );
    assert!(h["traceparent"]
        .to_str()
        .unwrap()
        .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
}

#[test]
fn a_trace_id_with_one_zero_half_is_still_valid() {
    for tp in [
        "00-0000000000000000000000000000abcd-00f067aa0ba902b7-01",
        "00-abcd0000000000000000000000000000-00f067aa0ba902b7-01",
    ] {
        let mut h = headers(&[("traceparent", tp)]);
        let s = propagate(&mut h, &Settings::default());
        assert_eq!(s.trace_hex(), tp[3..35], "{tp}");
        assert_eq!(s.parent_id, Some(0x00f0_67aa_0ba9_02b7), "{tp}");
    }
}

#[test]
fn only_lower_case_hex_digits_parse() {
    assert_eq!(lower_hex(b"0123456789abcdef"), Some(0x0123_4567_89ab_cdef));
    assert_eq!(lower_hex(b"ff"), Some(0xff));
    assert_eq!(lower_hex(b""), Some(0));
    for bad in [
        &b"0A"[..],
        b"g0",
        b"-1",
        b" 1",
        b"\xff0",
        b"0123456789abcdeF",
    ] {
        assert_eq!(lower_hex(bad), None, "{bad:?}");
    }
    // Through the header: an upper-case traceparent starts a new trace.
    let mut h = HeaderMap::new();
    h.insert(
        TRACEPARENT,
        HeaderValue::from_static("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
    );
    let span = propagate(&mut h, &Settings::default());
    assert_eq!(span.parent_id, None);
}
