"""Policies shared by the plugin's integration tests (plain text, the same
syntax as config/policy.example)."""

BASIC = """
default deny
unknown-devices refuse

role sensor
  publish   plant/%{site}/%{line}/%{id}/telemetry/#   qos<=1 retain=no max-payload=1k
  publish   plant/%{site}/%{line}/%{id}/status
  subscribe plant/%{site}/%{line}/%{id}/config
  read      plant/%{site}/%{line}/%{id}/config
end

role hmi
  subscribe plant/%{site}/%{line}/+/telemetry/#
  read      plant/%{site}/%{line}/+/telemetry/#
  subscribe plant/%{site}/%{line}/+/status
  read      plant/%{site}/%{line}/+/status
end

role engineer
  publish   plant/%{site}/%{line}/+/config          qos<=2
  subscribe plant/%{site}/%{line}/#                 qos<=2
  read      plant/%{site}/%{line}/#
  deny read plant/%{site}/%{line}/+/secret/#
end

role vault
  publish   plant/%{site}/%{line}/%{id}/secret/#
  publish   plant/%{site}/%{line}/%{id}/status
end

role ops
  subscribe $SYS/#
  read      $SYS/#
end

device sensor-1  role sensor   site=hq line=l1
device sensor-2  role sensor   site=hq line=l1
device sensor-9  role sensor   site=hq line=l9
device hmi-1     role hmi      site=hq line=l1
device eng-1     role engineer site=hq line=l1
device eng-2     role engineer site=hq line=l1
device ops-1     role ops
device vault-1   role vault    site=hq line=l1
"""

# Unknown identities get a role that can publish anything under `open/`, so a
# refusal in these tests can only come from the identity rules themselves.
PERMISSIVE_UNKNOWN = """
default deny
unknown-devices role anyone
role anyone
  publish open/#
  subscribe open/#
  read open/#
end
"""
