//! The state machines are sealed: programs that take an undeclared edge,
//! end a machine from a non-terminal state, build a state outside its
//! module, build a `Transition` by hand or add an edge of their own do not
//! compile. Each program in `compile-fail/` is compiled with `trybuild` on
//! the stable toolchain and must fail with exactly the compiler output in
//! the `.stderr` file next to it (regenerate those with
//! `TRYBUILD=overwrite cargo test -p wasmlet-pods --test compile_fail`
//! after a compiler upgrade, and review the diff).

#[test]
fn illegal_state_machine_code_does_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile-fail/*.rs");
}
