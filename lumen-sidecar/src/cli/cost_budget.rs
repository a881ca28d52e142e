//! `cost-budget apply`: the monthly cost budget on the Cloud Billing Budget API.

use super::{BudgetAction, CliError};
use crate::config::SidecarConfig;
use crate::google::GoogleRest;
use crate::google::access_tokens::command_tokens;
use crate::google::cost_budget::{BudgetSpec, account_currency, apply};
use crate::monitoring::scope::Scope;

/// A refusal for want of a quota project, with what to do about it.
fn with_quota_hint(error: String) -> String {
    if error.contains("quota project") {
        format!(
            "{error}\n(with a person's credentials, give --quota-project PROJECT or GOOGLE_CLOUD_QUOTA_PROJECT; the caller needs serviceusage.services.use there)"
        )
    } else {
        error
    }
}

/// `cost-budget apply`: what was (or would be) sent.
pub async fn budget_apply(action: BudgetAction) -> Result<String, CliError> {
    let BudgetAction::Apply {
        billing_account,
        project,
        service,
        amount,
        currency,
        display_name,
        pubsub_topic,
        email_channel,
        config,
        access_token_file,
        api_base,
        billing_api_base,
        quota_project,
        dry_run,
    } = action;
    let config = SidecarConfig::load(config.as_deref())?;
    let service = Scope::from_config(&config, "", service.as_deref())
        .map_err(CliError::Usage)?
        .service;
    let mut spec = BudgetSpec {
        display_name: display_name
            .unwrap_or_else(|| crate::google::cost_budget::display_name(&service, &project)),
        billing_account,
        project,
        amount: amount.unwrap_or(config.cost.monthly_budget_usd),
        currency: currency
            .as_deref()
            .map_or_else(|| "USD".to_owned(), |c| c.trim().to_ascii_uppercase()),
        pubsub_topic,
        email_channels: email_channel,
    };
    // Bad arguments are refused before any call (the currency, when not
    // given, is checked again once the account has said it).
    spec.validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let tokens = command_tokens(access_token_file.as_deref())
        .await
        .map_err(CliError::Read)?;
    let quota_project = quota_project.or_else(|| config.export.quota_project.clone());
    let api = GoogleRest::new(&api_base, tokens.clone()).with_quota_project(quota_project.clone());
    if currency.is_none() {
        let billing = GoogleRest::new(&billing_api_base, tokens).with_quota_project(quota_project);
        spec.currency = account_currency(&billing, &spec.billing_account)
            .await
            .map_err(|e| CliError::Read(with_quota_hint(format!("{e} (or give --currency)"))))?;
        if amount.is_none() && spec.currency != "USD" {
            return Err(CliError::Usage(format!(
                "billing account {} bills in {}; cost.monthly_budget_usd is USD: give --amount in {}",
                spec.billing_account, spec.currency, spec.currency
            )));
        }
    }
    spec.validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let applied = apply(&api, &spec, dry_run)
        .await
        .map_err(|e| CliError::Change(with_quota_hint(e.to_string())))?;
    let body =
        serde_json::to_string_pretty(&applied.request.body).expect("a JSON value serializes");
    Ok(if applied.done {
        format!(
            "{} {}\n{} budget {} \"{}\" ({} {} a month). Google's spend figures lag by hours: the rollback gate uses Lumen's own estimate.\n",
            applied.request.method,
            applied.request.path,
            if applied.request.method == "POST" {
                "created"
            } else {
                "updated"
            },
            applied.name,
            spec.display_name,
            spec.amount,
            spec.currency
        )
    } else {
        format!(
            "dry run: would send\n{} {}{}\n{body}\n",
            applied.request.method,
            api.base(),
            applied.request.path
        )
    })
}
