//! CycleState: what plugins compute once per scheduling attempt (at pre-filter or pre-score)
//! and read at later extension points, keyed by plugin name — upstream's `framework.CycleState`.
//! Preemption's dry run clones it and lets plugins update their copy as pods are removed.

use std::any::Any;
use std::collections::HashMap;

/// Data a plugin keeps in the cycle state: any cloneable value.
pub trait StateData: Any + Send + Sync {
    /// A boxed copy (the dry run of preemption works on copies).
    fn clone_data(&self) -> Box<dyn StateData>;
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting mutably.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_data(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Per-attempt plugin data.
#[derive(Default)]
pub struct CycleState {
    entries: HashMap<&'static str, Box<dyn StateData>>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            entries: self
                .entries
                .iter()
                .map(|(k, v)| (*k, (**v).clone_data()))
                .collect(),
        }
    }
}

impl CycleState {
    /// Stores `value` under `key` (a plugin's name), replacing what was there.
    pub fn write<T: Any + Clone + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.entries.insert(key, Box::new(value));
    }

    /// The value stored under `key`, if it has type `T`.
    pub fn read<T: Any>(&self, key: &str) -> Option<&T> {
        self.entries
            .get(key)
            .and_then(|v| (**v).as_any().downcast_ref())
    }

    /// The value stored under `key` for updating, if it has type `T`.
    pub fn read_mut<T: Any>(&mut self, key: &str) -> Option<&mut T> {
        self.entries
            .get_mut(key)
            .and_then(|v| (**v).as_any_mut().downcast_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_are_independent() {
        let mut s = CycleState::default();
        s.write("A", vec![1, 2]);
        let mut c = s.clone();
        c.read_mut::<Vec<i32>>("A").expect("vec").push(3);
        assert_eq!(s.read::<Vec<i32>>("A"), Some(&vec![1, 2]));
        assert_eq!(c.read::<Vec<i32>>("A"), Some(&vec![1, 2, 3]));
        assert!(s.read::<String>("A").is_none());
        assert!(s.read::<Vec<i32>>("B").is_none());
    }
}
