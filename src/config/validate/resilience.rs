//! Validation of the resilience keys: `balance`, `circuit_breaker`, `health_check` (per
//! backend) and `retry` (per route), into `crate::resilience` settings.

use super::*;
use crate::resilience::{self, BalanceKind};

/// `balance`, `circuit_breaker`, `health_check` -> `resilience::Settings`.
pub(super) fn backend_resilience(
    cx: &mut Ctx,
    path: &str,
    b: &schema::Backend,
) -> resilience::Settings {
    let balance = match b.balance.as_deref() {
        None | Some("p2c-ewma") => BalanceKind::P2cEwma,
        Some("least-request") => BalanceKind::LeastRequest,
        Some("round-robin") => BalanceKind::RoundRobin,
        Some(p) => {
            cx.err(
                &format!("{path}.balance"),
                format!("invalid balance `{p}`: expected p2c-ewma, round-robin or least-request"),
            );
            BalanceKind::P2cEwma
        }
    };
    let mut s = resilience::Settings {
        balance,
        ..Default::default()
    };
    if let Some(cb) = &b.circuit_breaker {
        let p = format!("{path}.circuit_breaker");
        match cb.max_concurrent_requests {
            Some(0) => cx.err(
                &format!("{p}.max_concurrent_requests"),
                "max_concurrent_requests must be at least 1",
            ),
            Some(n) => s.limits.max_concurrent_requests = n as usize,
            None => {}
        }
        s.limits.max_pending = match cb.max_pending {
            Some(n) => n as usize,
            None => s.limits.max_pending,
        };
        // 0 disables outlier ejection (docs/resilience.md).
        if let Some(n) = cb.consecutive_failures {
            s.outlier.consecutive_failures = n;
        }
        let et = format!("{p}.ejection_time");
        s.outlier.ejection_time =
            cx.duration(&et, cb.ejection_time.as_ref(), s.outlier.ejection_time);
        if s.outlier.ejection_time.is_zero() {
            cx.err(&et, "ejection_time must be greater than 0");
        }
        if let Some(pct) = cb.max_ejected_percent {
            if pct > 100 {
                cx.err(
                    &format!("{p}.max_ejected_percent"),
                    "max_ejected_percent must be 0..=100",
                );
            }
            s.outlier.max_ejected_percent = pct.min(100) as u8;
        }
    }
    if let Some(hc) = &b.health_check {
        let p = format!("{path}.health_check");
        let mut h = resilience::HealthSettings::default();
        if let Some(path) = &hc.path {
            if !path.starts_with('/') {
                cx.err(&format!("{p}.path"), "paths must start with `/`");
            }
            h.path = path.clone();
        }
        h.interval = cx.duration(&format!("{p}.interval"), hc.interval.as_ref(), h.interval);
        h.timeout = cx.duration(&format!("{p}.timeout"), hc.timeout.as_ref(), h.timeout);
        for (key, v, slot) in [
            (
                "healthy_threshold",
                hc.healthy_threshold,
                &mut h.healthy_threshold,
            ),
            (
                "unhealthy_threshold",
                hc.unhealthy_threshold,
                &mut h.unhealthy_threshold,
            ),
        ] {
            match v {
                Some(0) => cx.err(&format!("{p}.{key}"), format!("{key} must be at least 1")),
                Some(n) => *slot = n,
                None => {}
            }
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            cx.err(
                &p,
                "health_check interval and timeout must be greater than 0",
            );
        }
        s.health = Some(h);
    }
    s
}

pub(super) fn route_retry(cx: &mut Ctx, path: &str, r: &schema::Retry) -> model::RouteRetry {
    let mut s = resilience::RetrySettings::default();
    if let Some(a) = r.attempts {
        if a < 1 {
            cx.err(
                &format!("{path}.attempts"),
                "retry attempts must be at least 1 (the first try counts)",
            );
        }
        s.attempts = a.clamp(1, 10);
        if a > 10 {
            cx.err(
                &format!("{path}.attempts"),
                "retry attempts must be at most 10",
            );
        }
    } else {
        // A retry section without `attempts` means "retry once".
        s.attempts = 2;
    }
    if let Some(t) = &r.per_try_timeout {
        let d = cx.duration(&format!("{path}.per_try_timeout"), Some(t), Duration::ZERO);
        s.per_try_timeout = (!d.is_zero()).then_some(d);
    }
    if let Some(on) = &r.on {
        let mut parsed = resilience::RetryOn::none();
        for (i, item) in on.iter().enumerate() {
            if let Err(e) = parsed.add(&item.to_string()) {
                cx.err(&format!("{path}.on[{i}]"), e.to_string());
            }
        }
        s.on = parsed;
    }
    if let Some(b) = &r.backoff {
        s.backoff.base = cx.duration(
            &format!("{path}.backoff.base"),
            b.base.as_ref(),
            s.backoff.base,
        );
        s.backoff.max = cx.duration(
            &format!("{path}.backoff.max"),
            b.max.as_ref(),
            s.backoff.max,
        );
        if s.backoff.max < s.backoff.base {
            cx.err(
                &format!("{path}.backoff"),
                "backoff.max must not be smaller than backoff.base",
            );
        }
    }
    if let Some(b) = &r.budget {
        if let Some(ratio) = b.ratio {
            if !(0.0..=1000.0).contains(&ratio) {
                cx.err(
                    &format!("{path}.budget.ratio"),
                    "budget.ratio must be between 0 and 1000",
                );
            }
            s.budget.ratio = ratio as f32;
        }
        if let Some(m) = b.min_per_second {
            s.budget.min_per_second = m;
        }
    }
    if let Some(mb) = &r.max_body {
        match units::size(mb) {
            Ok(n) if n <= 16 << 20 => s.max_body = n as usize,
            Ok(_) => cx.err(
                &format!("{path}.max_body"),
                "max_body must be at most 16MiB",
            ),
            Err(m) => cx.err(&format!("{path}.max_body"), m),
        }
    }
    let mut idempotent_tools = Vec::new();
    for (i, t) in r.idempotent_tools.iter().flatten().enumerate() {
        match glob::Pattern::new(t) {
            Ok(p) => idempotent_tools.push(p),
            Err(e) => cx.err(
                &format!("{path}.idempotent_tools[{i}]"),
                format!("invalid glob `{t}`: {e}"),
            ),
        }
    }
    model::RouteRetry {
        settings: s,
        non_idempotent: r.non_idempotent.unwrap_or(false),
        idempotent_tools,
    }
}
