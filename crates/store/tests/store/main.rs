//! Behaviour tests of the store: one suite ([`suite`]) run against the
//! memory backend and a real etcd (TCP and unix socket endpoints, and TCP
//! with mutual TLS), plus
//! backend-specific tests of failures and recovery ([`etcd`], [`memory`]).

mod etcd;
mod harness;
mod k8s;
mod memory;
mod suite;
mod types;

/// Instantiate every suite test once per backend.
macro_rules! backend_suite {
    ($($test:ident),* $(,)?) => {
        mod suite_memory {
            $(
                #[tokio::test]
                async fn $test() {
                    crate::suite::$test(crate::harness::Harness::memory()).await;
                }
            )*
        }
        mod suite_etcd_tcp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
                async fn $test() {
                    crate::suite::$test(crate::harness::Harness::etcd_tcp().await).await;
                }
            )*
        }
        mod suite_etcd_unix {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
                async fn $test() {
                    crate::suite::$test(crate::harness::Harness::etcd_unix().await).await;
                }
            )*
        }
        mod suite_etcd_mtls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs etcd (installed by scripts/setup.sh); run by make test"]
                async fn $test() {
                    crate::suite::$test(crate::harness::Harness::etcd_mtls().await).await;
                }
            )*
        }
    };
}

backend_suite!(
    create_get_list,
    cluster_scoped,
    update_compare_and_swap,
    modify_retries_conflicts,
    delete_returns_last_state,
    watch_in_order,
    watch_filters_namespace,
    reflect_resyncs,
    untyped_values,
);
