use super::*;
use crate::exit::ExitReason;

const PAGE: usize = 64 * 1024;
const PAGE_BYTES: u64 = PAGE as u64;
const COUNTS: Counts = Counts { table_elements: 10, instances: 1, tables: 1, memories: 2 };

fn budgets(container: u64, node: u64) -> Budgets {
    Budgets { container: Budget::new(container), node: Budget::new(node) }
}

fn limiter(limit: u64) -> Limiter {
    Limiter::new(budgets(limit, u64::MAX), COUNTS, GuestStats::new())
}

#[test]
fn counts_all_memories_together() {
    let mut l = limiter(4 * PAGE_BYTES);
    assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
    assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
    assert!(!l.exceeded());
    let err = l.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap_err();
    assert!(l.exceeded());
    assert!(err.to_string().contains("memory limit of 262144 bytes exceeded"), "{err}");
    let exit = l.oom_exit().unwrap();
    assert_eq!((exit.code, exit.reason), (137, ExitReason::OutOfMemory));
}

#[test]
fn declared_maximum_is_a_plain_failure() {
    let mut l = limiter(u64::MAX);
    assert!(!l.memory_growing(PAGE, 3 * PAGE, Some(2 * PAGE)).unwrap());
    assert!(!l.exceeded());
    assert_eq!(l.oom_exit(), None);
}

#[test]
fn failed_grow_gives_the_grant_back() {
    let mut l = limiter(2 * PAGE_BYTES);
    assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
    l.memory_grow_failed(wasmtime::format_err!("mmap failed")).unwrap();
    assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
    assert!(!l.exceeded());
}

#[test]
fn a_failure_nothing_was_granted_for_gives_nothing_back() {
    let budgets = budgets(4 * PAGE_BYTES, u64::MAX);
    let mut l = Limiter::new(budgets.clone(), COUNTS, GuestStats::new());
    assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
    // The grow above succeeded; wasmtime then refuses one on the memory
    // type's own limits without asking the limiter.
    l.memory_grow_failed(wasmtime::format_err!("memory growth exceeds memory type's limits")).unwrap();
    assert_eq!(budgets.container.used(), 2 * PAGE_BYTES);
    assert!(l.table_growing(0, 4, None).unwrap());
    l.table_grow_failed(wasmtime::format_err!("overflow calculating new table size")).unwrap();
    assert_eq!(budgets.container.used(), 2 * PAGE_BYTES + 4 * TABLE_ELEMENT_BYTES);
}

#[test]
fn memory_and_tables_are_published() {
    let stats = GuestStats::new();
    let mut l = Limiter::new(budgets(u64::MAX, u64::MAX), COUNTS, stats.clone());
    assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
    assert!(l.table_growing(0, 4, None).unwrap());
    assert_eq!(stats.memory_bytes(), 2 * PAGE_BYTES + 4 * TABLE_ELEMENT_BYTES);
    assert!(l.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap());
    l.memory_grow_failed(wasmtime::format_err!("mmap failed")).unwrap();
    l.table_grow_failed(wasmtime::format_err!("no")).unwrap();
    assert_eq!(stats.memory_bytes(), 2 * PAGE_BYTES);
    assert_eq!(stats.memory_peak_bytes(), 3 * PAGE_BYTES + 4 * TABLE_ELEMENT_BYTES);
    // A second store on the same handle adds up; each takes its own share
    // off when dropped.
    let mut other = Limiter::new(budgets(u64::MAX, u64::MAX), COUNTS, stats.clone());
    assert!(other.memory_growing(0, PAGE, None).unwrap());
    assert_eq!(stats.memory_bytes(), 3 * PAGE_BYTES);
    drop(l);
    assert_eq!(stats.memory_bytes(), PAGE_BYTES);
    drop(other);
    assert_eq!(stats.memory_bytes(), 0);
}

#[test]
fn table_elements_are_capped() {
    let mut l = limiter(u64::MAX);
    assert!(l.table_growing(0, 10, None).unwrap());
    assert!(!l.table_growing(0, 11, None).unwrap());
}

#[test]
fn tables_count_against_the_limit() {
    let mut l = limiter(PAGE_BYTES);
    assert!(l.memory_growing(0, PAGE, None).unwrap());
    let err = l.table_growing(0, 1, None).unwrap_err();
    assert!(err.to_string().contains("memory limit of 65536 bytes exceeded"), "{err}");
    assert!(l.exceeded());
}

#[test]
fn stores_of_a_container_share_its_limit() {
    let shared = budgets(4 * PAGE_BYTES, u64::MAX);
    let stats = GuestStats::new();
    let mut first = Limiter::new(shared.clone(), COUNTS, stats.clone());
    let mut second = Limiter::new(shared.clone(), COUNTS, stats.clone());
    assert!(first.memory_growing(0, 3 * PAGE, None).unwrap());
    assert!(second.memory_growing(0, PAGE, None).unwrap());
    // Each alone is under the limit; together they are at it.
    assert!(second.memory_growing(PAGE, 2 * PAGE, None).is_err());
    assert!(second.exceeded() && !first.exceeded());
    assert_eq!((shared.container.used(), stats.memory_bytes()), (4 * PAGE_BYTES, 4 * PAGE_BYTES));
    assert_eq!(stats.oom_kills(), 1);
    // The first store freed: its share is back for the others.
    drop(first);
    assert_eq!(shared.container.used(), PAGE_BYTES);
    let mut third = Limiter::new(shared.clone(), COUNTS, stats.clone());
    assert!(third.memory_growing(0, 3 * PAGE, None).unwrap());
    drop((second, third));
    assert_eq!((shared.container.used(), shared.node.used(), stats.memory_bytes()), (0, 0, 0));
    assert_eq!(shared.container.peak(), 4 * PAGE_BYTES);
    assert_eq!(stats.memory_peak_bytes(), 4 * PAGE_BYTES);
}

#[test]
fn the_node_budget_spans_containers() {
    let node = Budget::new(3 * PAGE_BYTES);
    let container = |limit| Budgets { container: Budget::new(limit), node: node.clone() };
    let (a, b) = (container(2 * PAGE_BYTES), container(u64::MAX));
    let mut first = Limiter::new(a.clone(), COUNTS, GuestStats::new());
    let mut second = Limiter::new(b.clone(), COUNTS, GuestStats::new());
    assert!(first.memory_growing(0, 2 * PAGE, None).unwrap());
    assert!(second.memory_growing(0, PAGE, None).unwrap());
    // The second container has no limit of its own, but the node is full.
    let err = second.memory_growing(PAGE, 2 * PAGE, None).unwrap_err();
    assert!(err.to_string().contains("the node's memory for pods is exhausted"), "{err}");
    let exit = second.oom_exit().unwrap();
    assert_eq!((exit.code, exit.reason), (137, ExitReason::OutOfMemory));
    assert!(exit.message.contains("node"), "{}", exit.message);
    // Nothing leaked into the container's budget by the refused charge.
    assert_eq!((b.container.used(), node.used()), (PAGE_BYTES, 3 * PAGE_BYTES));
    // A grow past the container's own limit names the container's limit.
    assert!(first.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap_err().to_string().contains("memory limit of"));
    assert_eq!(first.oom_exit().unwrap().message, "memory limit of 131072 bytes exceeded");
    drop((first, second));
    assert_eq!(node.used(), 0);
}

#[test]
fn concurrent_stores_never_pass_the_shared_limit() {
    const THREADS: usize = 8;
    const LIMIT: u64 = 3 * PAGE_BYTES;
    // Every store wants 4 pages: each meets the limit, alone or not.
    let shared = budgets(LIMIT, 25 * PAGE_BYTES);
    let stats = GuestStats::new();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..2_000 {
                    let mut l = Limiter::new(shared.clone(), COUNTS, stats.clone());
                    for pages in 1..=4 {
                        if l.memory_growing((pages - 1) * PAGE, pages * PAGE, None).is_err() {
                            break;
                        }
                        assert!(shared.container.used() <= LIMIT);
                    }
                }
            });
        }
    });
    assert_eq!((shared.container.used(), shared.node.used(), stats.memory_bytes()), (0, 0, 0));
    assert!(shared.container.peak() <= LIMIT && stats.memory_peak_bytes() <= LIMIT);
    assert_eq!(stats.oom_kills(), (THREADS * 2_000) as u64, "every store met the limit once");
}

/// The texts of [`UNGRANTED_FAILURES`] are wasmtime's: a real grow past a
/// wasm32 memory's 4 GiB is refused without a grant, and the store's charge
/// stays exact.
#[test]
fn wasmtime_reports_the_type_limit_failure_as_ungranted() {
    let engine = wasmtime::Engine::default();
    let wat = r#"(module
        (memory (export "memory") 1)
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#;
    let module = wasmtime::Module::new(&engine, wat).unwrap();
    let shared = budgets(8 * PAGE_BYTES, u64::MAX);
    let mut store = wasmtime::Store::new(&engine, Limiter::new(shared.clone(), COUNTS, GuestStats::new()));
    store.limiter(|l| l as &mut dyn ResourceLimiter);
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
    let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(shared.container.used(), 3 * PAGE_BYTES);
    // 65536 more pages pass wasm32's 4 GiB: -1, and nothing given back.
    assert_eq!(grow.call(&mut store, 0x1_0000).unwrap(), -1);
    assert_eq!(shared.container.used(), 3 * PAGE_BYTES);
    assert!(!store.data().exceeded());
    // Past the container's limit: a trap, the OOM recorded.
    assert!(grow.call(&mut store, 6).is_err());
    assert!(store.data().exceeded());
    drop(store);
    assert_eq!(shared.container.used(), 0);
}
