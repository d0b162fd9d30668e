//! Resilience building blocks (balancing state, outlier ejection, budgets, backoff, health).
//! Being built; wired into the request path by `proxy::forward`.
