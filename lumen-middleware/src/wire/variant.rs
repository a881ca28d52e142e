//! A/B experiments on the wire (additive to wire version 1): the running
//! experiment's arms travel to the app on the ingest answers
//! ([`ExperimentArms`], inside [`TuningAnswer`](super::TuningAnswer)), and
//! the requests each arm served travel back as series of their own, labelled
//! with a [`Variant`]. A route's series with and without a variant are
//! disjoint: their sum is the route.

use serde::{Deserialize, Serialize};

/// One arm of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The control: the value in force.
    A = 0,
    /// The challenger.
    B = 1,
}

impl Arm {
    /// Both arms, A first.
    pub const BOTH: [Arm; 2] = [Arm::A, Arm::B];

    /// `"a"` or `"b"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arm::A => "a",
            Arm::B => "b",
        }
    }
}

/// Which arm of which experiment a series' requests were assigned to. (A
/// route's arm series carries the experiment its requests were last
/// assigned in: in the one interval where an experiment stops and the
/// next starts, both experiments' requests go under the newer id.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Variant {
    /// The experiment's id (at least 1).
    pub experiment: u32,
    /// The arm.
    pub arm: Arm,
}

/// How an arm's requests were assigned to it: at random, or by the app's
/// key (a key keeps its arm, so requests are not independent draws and a
/// sample-ratio test on requests does not apply to them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    /// Requests assigned at random.
    #[serde(default)]
    pub random: u64,
    /// Requests assigned by key.
    #[serde(default)]
    pub by_key: u64,
}

/// The running experiment as the tuning channel carries it: the parameter
/// it varies, each arm's value, and B's share of the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentArms {
    /// The experiment's id (at least 1); series name it in their [`Variant`].
    pub id: u32,
    /// The parameter's name, as the app reads it
    /// (`lumen_middleware::tuning().param(NAME)`).
    pub param: String,
    /// Arm A's value (the control: the value in force).
    pub a: u64,
    /// Arm B's value.
    pub b: u64,
    /// B's share of requests, percent (1 to 99).
    pub share_b_percent: u8,
}

impl ExperimentArms {
    /// Why the app cannot run these arms, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("id: must be at least 1".into());
        }
        if !(1..=99).contains(&self.share_b_percent) {
            return Err(format!(
                "share_b_percent: {} is not between 1 and 99",
                self.share_b_percent
            ));
        }
        if self.param.is_empty() || self.param.len() > super::MAX_NAME_LEN {
            return Err("param: must be 1 to 256 bytes".into());
        }
        Ok(())
    }
}
