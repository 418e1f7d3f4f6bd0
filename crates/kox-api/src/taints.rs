//! Taints and tolerations, written once for the scheduler, the DaemonSet controller and
//! taint-based eviction.

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`): an empty
/// effect or key matches any; `Exists` ignores the value, `Equal` (or no operator) compares it;
/// an unknown operator tolerates nothing.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: some(key),
            operator: some(operator),
            value: some(value),
            effect: some(effect),
            ..Toleration::default()
        }
    }

    #[test]
    fn tolerations_match_taints_as_upstream() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoExecute".into(),
            time_added: None,
        };
        let cases = [
            // (key, operator, value, effect, tolerates)
            ("k", "Equal", "v", "", true),
            ("k", "Equal", "w", "", false),
            ("k", "", "v", "", true),
            ("k", "Exists", "", "", true),
            ("", "Exists", "", "", true),
            ("", "Exists", "", "NoSchedule", false),
            ("k", "Exists", "", "NoExecute", true),
            ("other", "Exists", "", "", false),
            ("k", "Gt", "v", "", false),
            ("", "Equal", "v", "", true),
        ];
        for (key, op, value, effect, want) in cases {
            let t = toleration(key, op, value, effect);
            assert_eq!(
                tolerates(&t, &taint),
                want,
                "{key:?} {op:?} {value:?} {effect:?}"
            );
        }
    }
}
