//! An [`Engine`] in memory: ordered maps behind a lock. For fast unit tests of the
//! login and factor logic on the very [`super::KvStore`] code that runs on sled; it
//! keeps nothing across a restart.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::kv::{Engine, Tree, Write};
use crate::error::Result;

/// The trees as ordered maps.
#[derive(Default)]
pub struct MemoryEngine {
    trees: RwLock<Records>,
}

/// Every record, by tree and key.
type Records = BTreeMap<(Tree, Vec<u8>), Vec<u8>>;

impl MemoryEngine {
    /// A fresh, empty store on this engine.
    pub fn store() -> super::KvStore<MemoryEngine> {
        super::KvStore::new(MemoryEngine::default()).expect("an empty store opens")
    }
}

impl Engine for MemoryEngine {
    fn read<R>(
        &self,
        tree: Tree,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<R>,
    ) -> Result<R> {
        let trees = self.trees.read().unwrap_or_else(|p| p.into_inner());
        f(trees.get(&(tree, key.to_vec())).map(Vec::as_slice))
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let trees = self.trees.read().unwrap_or_else(|p| p.into_inner());
        Ok(trees
            .range((tree, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == tree && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, writes: &[Write]) -> Result<()> {
        let mut trees = self.trees.write().unwrap_or_else(|p| p.into_inner());
        for write in writes {
            let key = (write.tree, write.key.clone());
            match &write.value {
                Some(value) => trees.insert(key, value.clone()),
                None => trees.remove(&key),
            };
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn health(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}
