//! From a container spec to the guest's argv, with Kubernetes' `$(VAR)`
//! expansion (the environment itself comes from `wasmlet_volumes::resolve_env`).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Container;

/// The guest's argv: `command` + `args` when `command` is set; otherwise
/// argv[0] is the image reference as written in the pod spec (a wasm image has
/// no entrypoint program name), followed by `args`. `$(VAR)` references are
/// expanded with the container's environment.
pub fn argv(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let expand = |s: &String| wasmlet_volumes::expand::expand_map(s, &vars);
    let args = container.args.iter().flatten();
    match container.command.as_ref().filter(|c| !c.is_empty()) {
        Some(command) => command.iter().chain(args).map(expand).collect(),
        None => std::iter::once(container.image.clone().unwrap_or_default()).chain(args.map(expand)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn argv_from_command_or_image() {
        let env = vec![("N".to_owned(), "7".to_owned())];
        let c = container(serde_json::json!({"name": "a", "image": "reg/exit-code:v1", "args": ["$(N)", "$(M)"]}));
        assert_eq!(argv(&c, &env), ["reg/exit-code:v1", "7", "$(M)"]);
        let c = container(serde_json::json!({"name": "a", "image": "i", "command": ["prog", "-x"], "args": ["y"]}));
        assert_eq!(argv(&c, &env), ["prog", "-x", "y"]);
    }
}
