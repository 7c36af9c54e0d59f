//! Seed 000's standard set (MAM Reference Architecture: Standard Workflows for iOS,
//! ver. 2025.9.29): the eight workflows with their actions, their automation rules in
//! the guide's order, in the folders of "Organizing Workflows".
//!
//! Only what the guide leaves to each site is asked for ([`SiteSettings`]): the DEP
//! profile, the provisioning network, language and locale. The guide's optional
//! Dynamic Config Profile and wallpaper image are left out (they are site content); the
//! wallpaper's lock screen text is installed.

use serde::Deserialize;

use super::model::{
    Action, Condition, ConditionField, Folder, Operator, Repeats, RuleSpec, Schedule, Trigger,
    UpdateStrategy, WallpaperTarget, WifiSecurity, WorkflowModel, WorkflowSpec,
};

/// What the guide leaves to each site ("your DEP profile", "your provisioning network").
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteSettings {
    /// The DEP profile iOS Provisioning assigns.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[\t\n\u000B\u000C\r\u0085]*[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*[\t\n\u000B\u000C\r\u0085]*$"
    )]
    pub dep_profile: String,
    /// The provisioning network's SSID (not the production network's).
    pub wifi_ssid: String,
    /// Its security.
    #[serde(default = "wpa")]
    pub wifi_security: WifiSecurity,
    /// Its passphrase (WPA/WPA2 Personal).
    #[serde(default)]
    pub wifi_password: Option<String>,
    /// Language, default `en`.
    #[serde(default = "en")]
    pub language: String,
    /// Locale, default `en_US`.
    #[serde(default = "en_us")]
    pub locale: String,
    /// Apps Check In logs out (e.g. Epic Rover), if any.
    #[serde(default)]
    pub logout_apps: Vec<super::model::LogoutApp>,
}

fn wpa() -> WifiSecurity {
    WifiSecurity::WpaPersonal
}
fn en() -> String {
    "en".into()
}
fn en_us() -> String {
    "en_US".into()
}

/// A workflow of the set, with the id it is installed under.
pub struct StandardWorkflow {
    /// Its id.
    pub id: &'static str,
    /// The workflow.
    pub spec: WorkflowSpec,
}

fn wf(
    id: &'static str,
    name: &str,
    description: &str,
    model: WorkflowModel,
    folder: Folder,
    actions: Vec<Action>,
) -> StandardWorkflow {
    StandardWorkflow {
        id,
        spec: WorkflowSpec {
            name: name.into(),
            description: description.into(),
            model,
            folder,
            actions,
        },
    }
}

/// Seed 000's eight workflows, in the guide's order.
pub fn workflows(site: &SiteSettings) -> Vec<StandardWorkflow> {
    use Folder::*;
    use WorkflowModel::*;
    let set_home = || Action::SetAttribute {
        attribute: "Device Home".into(),
        value: "[Department]".into(),
    };
    vec![
        wf(
            "ios-provisioning",
            "iOS Provisioning",
            "Prepare an iOS device with standard configuration for use with MAM.",
            DeviceEnrollmentProgram,
            DeviceSetupAndUpdateWorkflows,
            vec![
                Action::PerformMdmCommand {
                    clear_passcode: true,
                    assign_dep_profile: Some(site.dep_profile.clone()),
                    delete_from_mdm: false,
                },
                Action::Erase {
                    supervised_and_dep: true,
                    return_to_service: false,
                },
                Action::SetTimezone {
                    timezone: "[Timezone]".into(),
                },
                Action::AddWifi {
                    ssid: site.wifi_ssid.clone(),
                    security: site.wifi_security,
                    password: site.wifi_password.clone(),
                    username: None,
                    disable_mac_randomization: true,
                    forget_after_minutes: Some(60),
                },
                Action::SetLanguageAndLocale {
                    language: site.language.clone(),
                    locale: site.locale.clone(),
                },
                Action::SetWallpaper {
                    image_base64: None,
                    location: WallpaperTarget::LockScreen,
                    lock_screen_text: Some(
                        "If found, return this device to [Department].\n[Device Serial]".into(),
                    ),
                    text_color: None,
                },
                set_home(),
            ],
        ),
        wf(
            "check-in",
            "Check In",
            "Check in an iOS device.",
            DeviceEnrollmentProgram,
            CheckoutWorkflows,
            vec![
                Action::PerformMdmCommand {
                    clear_passcode: true,
                    assign_dep_profile: None,
                    delete_from_mdm: false,
                },
                Action::CheckInDevice {
                    launch_blank_page: true,
                    logout_apps: site.logout_apps.clone(),
                },
                Action::OnFailure {
                    retry: true,
                    max_attempts: Some(2),
                    run_workflow: None,
                    reboot_and_check_in: false,
                },
            ],
        ),
        wf(
            "express-checkout",
            "Express Checkout",
            "Check out an iOS device using Express Checkout.",
            ExpressCheckout,
            CheckoutWorkflows,
            vec![Action::CheckOutDevice {
                display_text: Some("[Imprivata Display Name]".into()),
                suppress_blue_led: false,
            }],
        ),
        wf(
            "checkout",
            "Checkout",
            "Check out an iOS device using Checkout.",
            DeviceEnrollmentProgram,
            CheckoutWorkflows,
            vec![
                Action::CheckOutDevice {
                    display_text: Some("[Imprivata Display Name]".into()),
                    suppress_blue_led: false,
                },
                Action::OnFailure {
                    retry: false,
                    max_attempts: None,
                    run_workflow: None,
                    reboot_and_check_in: true,
                },
            ],
        ),
        wf(
            "manual-checkout",
            "Manual Checkout",
            "Check out an iOS device using a username and password.",
            OverTheAir,
            CheckoutWorkflows,
            vec![Action::SetAttribute {
                attribute: "Device User".into(),
                value: "[Device User]".into(),
            }],
        ),
        wf(
            "incorrect-device-home",
            "Incorrect Device Home",
            "Send an email when a device has been returned to the incorrect location.",
            OverTheAir,
            UtilityWorkflows,
            vec![Action::SendEmail {
                when: super::model::EmailWhen::BeforeDeployment,
                to: vec!["[Launchpad Manager]".into()],
                subject: "Mobile device ([Device Serial]) returned to the incorrect location"
                    .into(),
                body: "Device [Device Serial] has been returned to the incorrect location. \
                       The device was last seen at [Launchpad Name] in port [Last Port Number].\n\n\
                       This device should be returned to [Device Home]."
                    .into(),
            }],
        ),
        wf(
            "update-ios",
            "Update iOS",
            "Update an iOS device using standard settings.",
            DeviceEnrollmentProgram,
            DeviceSetupAndUpdateWorkflows,
            vec![Action::UpdateIos {
                use_standard_settings: true,
                strategy: UpdateStrategy::OldestSigned,
            }],
        ),
        wf(
            "set-device-home",
            "Set Device Home",
            "Manually set the Device Home based on the value in the Department Launchpad Attribute.",
            DeviceEnrollmentProgram,
            UtilityWorkflows,
            vec![set_home()],
        ),
    ]
}

fn rule(
    id: &'static str,
    name: &str,
    description: &str,
    trigger: Trigger,
    conditions: Vec<Condition>,
    workflows: &[&str],
    enabled: bool,
) -> (&'static str, RuleSpec) {
    (
        id,
        RuleSpec {
            name: name.into(),
            description: description.into(),
            trigger,
            conditions,
            workflows: workflows.iter().map(|w| (*w).to_owned()).collect(),
            enabled,
        },
    )
}

fn cond(field: ConditionField, op: Operator, value: serde_json::Value) -> Condition {
    Condition {
        field,
        attribute: None,
        op,
        value,
    }
}

/// Seed 000's automation rules with their ids, in the order the guide arranges them
/// within each trigger ("Incorrect Device Home" first among the check-in rules). The
/// four Update iOS schedules ship disabled, as the guide ships them. The guide's name
/// "Update iOS Ports Ports 6-10" is installed without its doubled word.
pub fn rules() -> Vec<(&'static str, RuleSpec)> {
    use ConditionField::*;
    use Operator::*;
    use serde_json::json;
    let update = |id, name: &str, ports: &str, time: &str, from: Option<i64>, to: i64| {
        let mut conditions = vec![
            cond(CheckoutStatus, Is, json!("checked_in")),
            cond(BatteryLevel, GreaterThan, json!(50)),
        ];
        if let Some(from) = from {
            conditions.push(cond(PortNumber, GreaterThanOrEqual, json!(from)));
        }
        conditions.push(cond(PortNumber, LessThanOrEqual, json!(to)));
        rule(
            id,
            name,
            &format!("Update iOS devices on ports {ports}."),
            Trigger::Schedule(Schedule {
                date: "2025-01-07".into(),
                time: time.into(),
                repeats: Repeats::Daily,
            }),
            conditions,
            &["update-ios", "check-in"],
            false,
        )
    };
    vec![
        rule(
            "incorrect-device-home",
            "Incorrect Device Home",
            "Send an email when a device has been returned to the incorrect location.",
            Trigger::CheckedIn {},
            vec![cond(DeviceHome, IsNot, json!("[Department]"))],
            &["incorrect-device-home", "check-in"],
            true,
        ),
        rule(
            "check-in",
            "Check In",
            "Check in an iOS device.",
            Trigger::CheckedIn {},
            vec![],
            &["check-in"],
            true,
        ),
        rule(
            "express-checkout",
            "Express Checkout",
            "Check out an iOS device using Express Checkout.",
            Trigger::CheckedOut {},
            vec![],
            &["express-checkout"],
            true,
        ),
        rule(
            "checkout",
            "Checkout",
            "Check out an iOS device using Checkout.",
            Trigger::CheckedOut {},
            vec![],
            &["checkout"],
            true,
        ),
        rule(
            "manual-checkout",
            "Manual Checkout",
            "Check out an iOS device using a username and password.",
            Trigger::UnlockedViaPassword {},
            vec![],
            &["manual-checkout"],
            true,
        ),
        update(
            "update-ios-ports-1-5",
            "Update iOS Ports 1-5",
            "1-5",
            "06:00",
            None,
            5,
        ),
        update(
            "update-ios-ports-6-10",
            "Update iOS Ports 6-10",
            "6-10",
            "12:00",
            Some(6),
            10,
        ),
        update(
            "update-ios-ports-11-15",
            "Update iOS Ports 11-15",
            "11-15",
            "18:00",
            Some(11),
            15,
        ),
        update(
            "update-ios-ports-16-20",
            "Update iOS Ports 16-20",
            "16-20",
            "00:00",
            Some(16),
            24,
        ),
    ]
}
