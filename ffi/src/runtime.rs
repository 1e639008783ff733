//! The library's Tokio runtime: the mesh crate's journal, HTTP clients and peer-to-peer
//! transport need one, and a foreign caller brings its own executor (Kotlin coroutines, Swift
//! tasks, asyncio) that is not Tokio. Each call is spawned here and its handle awaited there.

use std::{future::Future, sync::OnceLock};

use crate::MeshFfiError;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("smartmesh")
            .enable_all()
            .build()
            .expect("the SmartMesh runtime starts")
    })
}

/// Runs `work` on the library's runtime and waits for it from any executor.
pub(crate) async fn on_runtime<T, F>(work: F) -> Result<T, MeshFfiError>
where
    F: Future<Output = Result<T, MeshFfiError>> + Send + 'static,
    T: Send + 'static,
{
    runtime()
        .spawn(work)
        .await
        .map_err(|e| MeshFfiError::Internal {
            message: format!("the call stopped: {e}"),
        })?
}

/// Spawns `work` on the library's runtime, not waiting for it.
pub(crate) fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(work)
}
