//! `katotune render PROFILE [--output plan|compose|kubernetes]`: what a profile's
//! stack would be, printed and touching nothing; secrets print as `***` (the
//! Kubernetes manifests read them from a Secret instead).

use serde_json::Value;

use super::{load_profile, print_data, CliError, CliResult};
use crate::cli::{GlobalArgs, KubernetesArgs, OutputFormat, RenderArgs, RenderAs};
use crate::exit;
use crate::stack::kubernetes::{self, KubeOptions};
use crate::stack::template;

/// Prints the plan, the compose file or the Kubernetes manifests of a profile.
pub fn render(args: RenderArgs, global: &GlobalArgs) -> CliResult<i32> {
    let loaded = load_profile(&args.profile, &args.overrides)?;
    if args.output != RenderAs::Kubernetes {
        if let Some(flag) = kubernetes_flag(&args.kubernetes) {
            return Err(CliError::bad_input(format!(
                "{flag} applies to `--output kubernetes` only; add that, or leave {flag} out"
            )));
        }
    }
    let backend = loaded.profile.stack.backend;
    if args.output != RenderAs::Kubernetes && backend != crate::profile::schema::Backend::Docker {
        // The plan is still worth seeing, but it is not what `run` brings up.
        noteln!(
            "note: profile {} uses the {} backend, so `run` and `compare` never start this \
             docker stack; it is what `apply`, `up` or `run --backend docker` would create",
            loaded.profile.name,
            super::output::user_name(&backend)
        );
    }
    let plan = template::render(&loaded.profile, "render")?;
    let doc = match args.output {
        RenderAs::Plan => shown_plan(&plan)?,
        RenderAs::Compose => template::to_compose(&plan),
        RenderAs::Kubernetes => return render_kubernetes(&loaded.profile, &args, global),
    };
    print_data(&crate::secret::Redacted(&doc), global)?;
    Ok(exit::OK)
}

/// The plan with secrets masked and file contents shortened to their size.
fn shown_plan(plan: &crate::stack::plan::StackPlan) -> CliResult<Value> {
    let mut shown = serde_json::to_value(plan)?;
    if let Some(list) = shown.get_mut("containers").and_then(Value::as_array_mut) {
        for (c, spec) in list.iter_mut().zip(&plan.containers) {
            c["env"] = serde_json::to_value(template::masked_env(spec))?;
            for f in c
                .get_mut("files")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                f["contents"] = Value::from(format!(
                    "<{} bytes>",
                    f["contents"].as_str().map_or(0, str::len)
                ));
            }
        }
    }
    Ok(shown)
}

fn render_kubernetes(
    profile: &crate::profile::Profile,
    args: &RenderArgs,
    global: &GlobalArgs,
) -> CliResult<i32> {
    let k = &args.kubernetes;
    let defaults = KubeOptions::default();
    let options = KubeOptions {
        namespace: k.namespace.clone(),
        shards: k.shards.unwrap_or(defaults.shards),
        image: k.image.clone().unwrap_or(defaults.image),
        volume_size: k.volume_size.clone().unwrap_or(defaults.volume_size),
        storage_class: k.storage_class.clone(),
    };
    let manifests = kubernetes::render(profile, &options)?;
    match global.format {
        OutputFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&kubernetes::to_list(&manifests)?)?
        ),
        OutputFormat::Text => out!("{}", kubernetes::to_yaml(&manifests, &args.profile)?),
    }
    Ok(exit::OK)
}

/// The first Kubernetes-only flag given, if any.
fn kubernetes_flag(k: &KubernetesArgs) -> Option<&'static str> {
    [
        (k.namespace.is_some(), "--namespace"),
        (k.shards.is_some(), "--shards"),
        (k.image.is_some(), "--image"),
        (k.volume_size.is_some(), "--volume-size"),
        (k.storage_class.is_some(), "--storage-class"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}
