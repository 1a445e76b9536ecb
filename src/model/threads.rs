//! Worker-thread caps: running a whole job (not only its structural fit) on a given
//! number of threads.

use super::ModelError;
use rayon::ThreadPool;

/// A pool of `n` worker threads, or `None` for `n = 0` (rayon's global pool: all cores),
/// or when the calling code already runs on a pool of exactly `n` threads (a fit inside a
/// train capped at the same count reuses the train's pool instead of adding threads).
pub fn pool(n: usize) -> Result<Option<ThreadPool>, ModelError> {
    if n == 0 || (rayon::current_thread_index().is_some() && rayon::current_num_threads() == n) {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map(Some)
        .map_err(|e| ModelError::Param(format!("threads: {e}")))
}

/// `f` run in `pool` (its parallel work then uses that pool's threads only), or where
/// it is called for `None`.
pub fn within<R: Send>(pool: Option<&ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// `f` run on `n` worker threads ([`pool`] then [`within`]; 0 = all cores): a command or a
/// fit capped at `--threads`.
pub fn capped<R: Send, E: From<ModelError> + Send>(
    n: usize,
    f: impl FnOnce() -> Result<R, E> + Send,
) -> Result<R, E> {
    let pool = pool(n)?;
    within(pool.as_ref(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_in_a_pool_of_n_sees_n_threads() {
        let p = pool(1).unwrap();
        assert!(p.is_some());
        assert_eq!(within(p.as_ref(), rayon::current_num_threads), 1);
        let p3 = pool(3).unwrap();
        assert_eq!(within(p3.as_ref(), rayon::current_num_threads), 3);
    }

    #[test]
    fn a_capped_job_runs_on_its_threads() {
        let n: Result<usize, ModelError> = capped(1, || Ok(rayon::current_num_threads()));
        assert_eq!(n.unwrap(), 1);
        let all: Result<usize, ModelError> = capped(0, || Ok(rayon::current_num_threads()));
        assert_eq!(all.unwrap(), rayon::current_num_threads());
    }

    #[test]
    fn no_cap_or_the_same_cap_adds_no_pool() {
        assert!(pool(0).unwrap().is_none());
        let outer = pool(2).unwrap();
        // a fit inside a train capped at 2 runs on the train's pool
        let inner_is_new = within(outer.as_ref(), || pool(2).unwrap().is_some());
        assert!(!inner_is_new);
        // a different cap inside is honoured with its own pool
        let other = within(outer.as_ref(), || {
            let p = pool(1).unwrap();
            within(p.as_ref(), rayon::current_num_threads)
        });
        assert_eq!(other, 1);
    }
}
