//! The closed sets the domain stores — a subscriber's [`Channel`] and [`SubscriberStatus`], a
//! delivery's [`DeliveryState`] — and a [`Recipient`] (where one delivery goes).

use serde::{Deserialize, Serialize};

macro_rules! closed_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("{:?} is not a {}", s, stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set!(
    /// How a recipient is reached.
    Channel {
        /// An HTTPS (or HTTP) endpoint, signed with the subscriber's secret.
        Webhook = "webhook",
        /// A QQ private message through OneBot.
        OnebotUser = "onebot_user",
        /// A QQ group message through OneBot.
        OnebotGroup = "onebot_group",
    }
);

closed_set!(
    /// Whether a subscriber receives broadcasts.
    SubscriberStatus {
        /// It does.
        Active = "active",
        /// The operator removed it (`celeriac fanout unsubscribe`).
        Unsubscribed = "unsubscribed",
        /// Its endpoint answered 410 Gone.
        Disabled = "disabled",
    }
);

closed_set!(
    /// Where one delivery of a broadcast stands. Every state but `pending` is final (an
    /// operator's `retry-failed` takes `failed` back to `pending`).
    DeliveryState {
        /// Not yet delivered; attempts may remain.
        Pending = "pending",
        /// The receiver accepted it (2xx, or OneBot sent it).
        Delivered = "delivered",
        /// Every attempt failed, or the receiver is gone (410).
        Failed = "failed",
        /// The subscriber was unsubscribed or disabled before it was sent.
        Skipped = "skipped",
    }
);

/// Where one delivery goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Recipient {
    /// How.
    pub channel: Channel,
    /// The URL (webhook) or the QQ user or group number.
    pub target: String,
    /// The webhook's secret (`whsec_…`); none for OneBot.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
}

impl Recipient {
    /// Check the target fits the channel: an `http(s)` URL, or a positive QQ number.
    pub fn validate(&self) -> Result<(), String> {
        match self.channel {
            Channel::Webhook => {
                let u = url::Url::parse(&self.target)
                    .map_err(|e| format!("{:?} is not a URL: {e}", self.target))?;
                if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    return Err(format!(
                        "{:?} is not an http:// or https:// URL",
                        self.target
                    ));
                }
                if let Some(s) = &self.secret {
                    crate::sign::Secret::parse(s)?;
                }
                Ok(())
            }
            Channel::OnebotUser | Channel::OnebotGroup => match self.target.parse::<i64>() {
                Ok(n) if n > 0 => Ok(()),
                _ => Err(format!("{:?} is not a QQ number", self.target)),
            },
        }
    }

    /// The same recipient, whatever its secret: `webhook https://…`, `onebot_user 123`.
    pub fn label(&self) -> String {
        format!("{} {}", self.channel, self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
        }
        for s in SubscriberStatus::ALL {
            assert_eq!(s.as_str().parse::<SubscriberStatus>().unwrap(), *s);
        }
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>().unwrap(), *s);
        }
        assert!("email".parse::<Channel>().is_err());
    }

    #[test]
    fn targets_must_fit_their_channel() {
        let r = |channel, target: &str| Recipient {
            channel,
            target: target.into(),
            secret: None,
        };
        assert!(r(Channel::Webhook, "https://example.com/hook")
            .validate()
            .is_ok());
        assert!(r(Channel::Webhook, "ftp://example.com/")
            .validate()
            .is_err());
        assert!(r(Channel::Webhook, "not a url").validate().is_err());
        assert!(r(Channel::OnebotUser, "12345").validate().is_ok());
        assert!(r(Channel::OnebotGroup, "-3").validate().is_err());
    }
}
