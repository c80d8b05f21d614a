//! Normalizations on the oracle's side (DWARF, `go tool` output), written from Go's own rules,
//! never by asking the reader under test.

/// Go's `funcNameForPrint`: everything from the first `[` to the last `]` becomes `[...]`
/// (DWARF names spell out the shapes, e.g. `main.f[go.shape.int]`).
pub fn name_for_print(name: &str) -> String {
    let Some(i) = name.find('[') else {
        return name.to_string();
    };
    let Some(j) = name.rfind(']') else {
        return name.to_string();
    };
    if j <= i {
        return name.to_string();
    }
    format!("{}[...]{}", &name[..i], &name[j + 1..])
}

/// True for the wrappers the compiler generates with real source lines, by the names it gives
/// them (raw DWARF / symbol names, before [`name_for_print`]):
/// * `go`/`defer` statement wrappers, `F.gowrapN` / `F.deferwrapN` (Go 1.22+,
///   cmd/compile/internal/ir/func.go);
/// * dictionary wrappers of generic functions: the body of a generic function is compiled only
///   as shape instantiations (`F[go.shape.int]`); an instantiation named with concrete types
///   (`F[int]`, `(*T[int]).M`) is the wrapper that passes the dictionary.
///
/// The runtime elides wrappers from tracebacks (funcID wrapper); DWARF lists them.
pub fn is_wrapper_name(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    let go_defer = ["gowrap", "deferwrap"].iter().any(|p| {
        last.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    let dictionary = match (name.find('['), name.rfind(']')) {
        (Some(i), Some(j)) if i < j => {
            let args = &name[i + 1..j];
            args != "..." && !args.contains("go.shape.")
        }
        _ => false,
    };
    go_defer || dictionary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_names() {
        assert!(is_wrapper_name("main.deferred.deferwrap1"));
        assert!(is_wrapper_name("main.(*T).run.gowrap12"));
        assert!(!is_wrapper_name("main.gowrap"));
        assert!(!is_wrapper_name("main.f.func1"));
        assert!(is_wrapper_name("main.(*Box[int]).Get"));
        assert!(!is_wrapper_name("main.(*Box[go.shape.int]).Get"));
        assert!(!is_wrapper_name("main.Map[go.shape.string,go.shape.int]"));
        assert_eq!(name_for_print("main.f[go.shape.int]"), "main.f[...]");
    }
}
