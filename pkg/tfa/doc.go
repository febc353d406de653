// Package tfa is PVE's two-factor authentication data: priv/tfa.cfg, TOTP
// (RFC 6238) and recovery keys, the login challenge and its verification
// with PVE's lockout rules. It is a pure library: callers read and write
// the files (through the config root, holding PVE's tfa.cfg lock) and pass
// bytes to Parse/Marshal and ParseChallengeData/Marshal.
//
// Sources (facts only, no code taken): proxmox/proxmox-rs at f3305009
// (proxmox-tfa 6.0.5): proxmox-tfa/src/api/mod.rs (TfaConfig, TfaUserData,
// TfaEntry, TotpEntry, TfaChallenge, TfaResponse, verify, lockout
// defaults), api/recovery.rs, api/methods.rs, api/webauthn.rs, api/u2f.rs,
// src/types.rs (TfaInfo, TypedTfaInfo, TfaUser, TfaUpdateInfo),
// src/totp.rs (otpauth URI parsing and writing, code matching),
// proxmox-uuid/src/lib.rs (entry ids); proxmox/proxmox-perl-rs at 1fa643d:
// pve-rs/src/bindings/tfa.rs (PVE::RS::TFA: JSON-then-legacy parsing,
// serde_json::to_vec writing, version 1 format, challenge file under
// /run/pve-private/tfa-challenges, enable_lockout = true);
// proxmox/pve-access-control at 5ccd07d: src/PVE/AccessControl.pm
// (authenticate_2nd_new*, realm TFA rules, tfa.cfg registration),
// src/PVE/API2/TFA.pm (the /access/tfa API), src/PVE/API2/AccessControl.pm
// (POST /access/ticket, "!tfa!" half-login tickets); andreasots/base32 0.4
// src/lib.rs (the base32 decoder proxmox-tfa uses).
//
// # tfa.cfg
//
// One line of compact JSON written by serde_json (no trailing newline):
//
//	{"users":{"USERID":{"totp":[...],"u2f":[...],"webauthn":[...],
//	  "recovery":{"secret":"HEX16","entries":["HMAC-HEX"|null,...],"created":N},
//	  "yubico":[...],"totp-locked":true,"tfa-locked-until":N}}}
//
// Members appear in that order; empty lists, a missing recovery set,
// totp-locked=false and a missing lock are left out, and "users" is left
// out when empty ("{}"). PVE iterates its users map in hash order; Marshal
// sorts user ids. Each factor entry is {"id","description","created",
// "enable","entry"} with description left out when empty and enable only
// written when false; ids are random lower-case UUIDs. A TOTP entry is the
// otpauth URI (re-generated in canonical form, see TOTP.URI), or once used
// {"totp":URI,"last-count":STEP}. Yubico entries hold the key's public id,
// u2f and webauthn entries protocol data this package keeps verbatim. A
// top-level "u2f"/"webauthn" object (configuration copied from PBS) is
// ignored and dropped by PVE; it is kept verbatim here.
//
// PVE's parser refuses unknown members of users and entries. Parse keeps
// unknown members anywhere verbatim instead (forward compatibility), and a
// user with unknown members always gets a login challenge (fail closed).
// An expired tfa-locked-until is dropped by PVE on load; see ExpireLocks.
//
// When the content is not valid JSON PVE reads the version 1 format (PVE
// 6 and older, still accepted): lines "USER:TYPE:BASE64(JSON)" with TYPE
// oath ({"keys","config":{"step","digits"}}), yubico ({"keys"}) or u2f
// ({"keyHandle","publicKey"}), imported with id "v1-entry". Parse reads it
// too (Config.Legacy); Marshal always writes JSON, as PVE does on its next
// write. Old TOTP keys in user.cfg's "keys" field are the caller's concern
// (AddTOTPUnverified is PVE's add_totp_entry for them).
//
// # Factors and login
//
// TOTP codes are checked at steps -1, 0 and +1; recovery key sets have ten
// keys "xxxx-xxxx-xxxx-xxxx" stored as HMAC-SHA256 keyed with the set's
// hex secret. The challenge is {"totp":true,"recovery":[unused indices],
// "yubico":true} (plus u2f/webauthn data PVE adds); answers are
// "totp:CODE", "recovery:KEY", "u2f:JSON" or "webauthn:JSON".
//
// Replay protection: PVE itself records the accepted time step per TOTP
// key in tfa.cfg ("last-count") and refuses a code whose step is not
// after it, so the state is cluster-wide, survives restarts and is read by
// PVE; no extra file is needed. Beyond PVE, AddTOTP also records the step
// of the code used to register the key.
//
// Lockout: the consecutive failure counters live in the node-local
// challenge file (ChallengeData); 8 TOTP failures set totp-locked (cleared
// by a recovery key or an unlock), 100 failures of any factor set
// tfa-locked-until to now+3600.
package tfa
