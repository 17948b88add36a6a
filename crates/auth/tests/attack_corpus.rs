//! The attack corpus: every token here must be refused, each for its specific reason.

#![expect(clippy::unwrap_used, reason = "fixture helpers fail the test loudly")]

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use mcp_guard_auth::Fingerprint;
use mcp_guard_auth::store::{MemoryStore, Store};
use mcp_guard_auth::token::{
    AccessClaims, AuthnError, IssuerPolicy, KeySet, SigningKey, TokenAuthenticator, TokenError,
    TokenIssuer, Verifier, VerifyKey,
};
use serde_json::{Value, json};

const NOW: i64 = 1_795_665_360;
const ISS: &str = "https://gw.example";
const AUD: &str = "https://gw.example/mcp";
const EXT_ISS: &str = "https://idp.example";

struct World {
    own: Arc<SigningKey>,
    other_own: SigningKey,
    rsa_private_pem: String,
    rsa_public_pem: String,
    rsa_public_der: Vec<u8>,
    rsa_public_raw: Vec<u8>,
    rsa_kid: String,
    verifier: Verifier,
    issuer: TokenIssuer,
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn world() -> World {
    let own = Arc::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
    let other_own = SigningKey::generate(Algorithm::EdDSA).unwrap();
    // The external issuer signs RS256 and publishes its public key: the classic confusion target.
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rsa_private_der = rsa.as_der().unwrap().as_ref().to_vec();
    let rsa_public_der = rsa.public_key().as_der().unwrap().as_ref().to_vec();
    let rsa_public_raw = rsa.public_key().as_ref().to_vec();
    let rsa_public_pem = pem("PUBLIC KEY", &rsa_public_der);
    let rsa_private_pem = pem("PRIVATE KEY", &rsa_private_der);
    let rsa_signing =
        SigningKey::from_private_pem(Algorithm::RS256, rsa_private_pem.as_bytes()).unwrap();
    let rsa_kid = rsa_signing.kid().to_owned();

    let mut own_keys = KeySet::new();
    own_keys.insert(own.verify_key().clone());
    let mut ext_keys = KeySet::new();
    ext_keys.insert(rsa_signing.verify_key().clone());
    // The external issuer also has an HMAC key (under another id), so HS256 is allowed for it:
    // a token must still not be able to use the RSA key as an HMAC secret.
    ext_keys.insert(VerifyKey::hmac(Some("hmac-1".into()), Algorithm::HS256, &[9u8; 32]).unwrap());
    let verifier = Verifier::new(vec![
        IssuerPolicy {
            issuer: ISS.into(),
            own: true,
            audiences: vec![AUD.into()],
            algorithms: vec![Algorithm::EdDSA],
            keys: own_keys,
            required_typ: Some("at+jwt".into()),
            roles_claim: "roles".into(),
        },
        IssuerPolicy {
            issuer: EXT_ISS.into(),
            own: false,
            audiences: vec![AUD.into()],
            algorithms: vec![Algorithm::RS256, Algorithm::HS256],
            keys: ext_keys,
            required_typ: None,
            roles_claim: "realm.roles".into(),
        },
    ])
    .leeway(Duration::from_secs(30));
    let issuer = TokenIssuer::new(
        ISS,
        AUD,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
        own.clone(),
    );
    World {
        own,
        other_own,
        rsa_private_pem,
        rsa_public_pem,
        rsa_public_der,
        rsa_public_raw,
        rsa_kid,
        verifier,
        issuer,
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": AUD, "exp": NOW + 600, "iat": NOW, "jti": "j-1", "type": "access"})
}

/// Signs `header.payload` with a key and algorithm of the test's choosing.
fn signed(header: &Value, payload: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let msg = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).unwrap();
    format!("{msg}.{sig}")
}

fn own_token(w: &World, header: Value, payload: Value) -> String {
    // The gateway's own key signs whatever header and claims the test chooses.
    mcp_guard_auth::danger::sign_with(&w.own, &header, &payload).unwrap()
}

fn own_header(w: &World) -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": w.own.kid()})
}

fn rsa_token(w: &World, payload: Value) -> String {
    let key = EncodingKey::from_rsa_pem(w.rsa_private_pem.as_bytes()).unwrap();
    signed(
        &json!({"alg": "RS256", "kid": w.rsa_kid}),
        &payload,
        &key,
        Algorithm::RS256,
    )
}

#[track_caller]
fn refused(w: &World, token: &str, want: TokenError) {
    match w.verifier.verify(token, NOW) {
        Ok(v) => panic!(
            "accepted a token that must be refused ({want:?}): {:?}",
            v.principal
        ),
        Err(e) => assert_eq!(e, want),
    }
}

#[test]
fn positive_controls_verify() {
    let w = world();
    let v = w
        .verifier
        .verify(&own_token(&w, own_header(&w), claims()), NOW)
        .unwrap();
    assert_eq!(v.principal.subject, "alice");
    assert_eq!(
        v.principal.issuer, None,
        "own tokens map to the gateway's issuer"
    );
    let mut p = claims();
    p["iss"] = json!(EXT_ISS);
    p["realm"] = json!({"roles": ["user"]});
    p["scope"] = json!("mcp:read mcp:tools");
    let v = w.verifier.verify(&rsa_token(&w, p), NOW).unwrap();
    assert_eq!(v.principal.issuer.as_deref(), Some(EXT_ISS));
    assert_eq!(v.principal.roles, vec!["user"]);
    assert_eq!(v.principal.scopes, vec!["mcp:read", "mcp:tools"]);
    // Issued by the gateway itself.
    let issued = w
        .issuer
        .access(
            &AccessClaims {
                subject: "bob".into(),
                permissions: vec!["tools:execute:echo".into()],
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
    let v = w.verifier.verify(issued.token.expose(), NOW).unwrap();
    assert_eq!(v.principal.permissions, vec!["tools:execute:echo"]);
    // Within the leeway.
    let mut p = claims();
    p["exp"] = json!(NOW - 10);
    assert!(
        w.verifier
            .verify(&own_token(&w, own_header(&w), p), NOW)
            .is_ok()
    );
}

#[test]
fn alg_none_in_any_case() {
    let w = world();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(json!({"alg": alg, "typ": "at+jwt"}).to_string().as_bytes());
        let p = b64(claims().to_string().as_bytes());
        refused(&w, &format!("{h}.{p}."), TokenError::AlgNone);
        refused(&w, &format!("{h}.{p}.c2ln"), TokenError::AlgNone);
    }
}

#[test]
fn hmac_keyed_with_the_published_public_key() {
    let w = world();
    let mut p = claims();
    p["iss"] = json!(EXT_ISS);
    let forms: [(&str, &[u8]); 3] = [
        ("pem", w.rsa_public_pem.as_bytes()),
        ("der", &w.rsa_public_der),
        ("raw", &w.rsa_public_raw),
    ];
    for (form, secret) in forms {
        let key = EncodingKey::from_secret(secret);
        // Naming the RSA key: its algorithm is fixed, so HS256 cannot use it.
        let t = signed(
            &json!({"alg": "HS256", "kid": w.rsa_kid}),
            &p,
            &key,
            Algorithm::HS256,
        );
        refused(
            &w,
            &t,
            TokenError::KeyAlgMismatch {
                key: "RS256",
                token: "HS256",
            },
        );
        // Naming the HMAC key: the signature does not verify, the secret is not the public key.
        let t = signed(
            &json!({"alg": "HS256", "kid": "hmac-1"}),
            &p,
            &key,
            Algorithm::HS256,
        );
        refused(&w, &t, TokenError::BadSignature);
        // At our own issuer HS256 is not even allowed.
        let mut own = claims();
        own["iss"] = json!(ISS);
        let t = signed(
            &json!({"alg": "HS256", "typ": "at+jwt", "kid": w.own.kid()}),
            &own,
            &key,
            Algorithm::HS256,
        );
        refused(&w, &t, TokenError::AlgNotAllowed("HS256".into()));
        let _ = form;
    }
}

#[test]
fn key_ids() {
    let w = world();
    let mut h = own_header(&w);
    h["kid"] = json!("no-such-key");
    refused(&w, &own_token(&w, h, claims()), TokenError::UnknownKid);
    for trick in [
        "../../../../dev/null",
        "/etc/passwd",
        "..\\..\\keys",
        "kid\u{0}",
        " ",
    ] {
        let mut h = own_header(&w);
        h["kid"] = json!(trick);
        refused(&w, &own_token(&w, h, claims()), TokenError::UnknownKid);
    }
    let mut h = own_header(&w);
    h["kid"] = json!(format!("{}/../{}", w.own.kid(), w.own.kid()));
    refused(&w, &own_token(&w, h, claims()), TokenError::UnknownKid);
    let mut h = own_header(&w);
    h.as_object_mut().unwrap().remove("kid");
    refused(&w, &own_token(&w, h, claims()), TokenError::MissingKid);
    let mut h = own_header(&w);
    h["kid"] = json!(7);
    refused(
        &w,
        &own_token(&w, h, claims()),
        TokenError::BadJson("header"),
    );
}

#[test]
fn time_claims() {
    let w = world();
    let mut p = claims();
    p["exp"] = json!(NOW - 31);
    refused(&w, &own_token(&w, own_header(&w), p), TokenError::Expired);
    let mut p = claims();
    p["nbf"] = json!(NOW + 3600);
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::NotYetValid,
    );
    let mut p = claims();
    p.as_object_mut().unwrap().remove("exp");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::MissingExp,
    );
    let mut p = claims();
    p["exp"] = json!("tomorrow");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::MissingExp,
    );
}

#[test]
fn issuer_and_audience() {
    let w = world();
    let mut p = claims();
    p["iss"] = json!("https://evil.example");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::UnknownIssuer,
    );
    let mut p = claims();
    p.as_object_mut().unwrap().remove("iss");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::UnknownIssuer,
    );
    let mut p = claims();
    p["aud"] = json!("https://other.example/mcp");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::WrongAudience,
    );
    let mut p = claims();
    p["aud"] = json!(["a", "b"]);
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::WrongAudience,
    );
    let mut p = claims();
    p.as_object_mut().unwrap().remove("aud");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::MissingAudience,
    );
    let mut p = claims();
    p["aud"] = json!(["x", AUD]);
    assert!(
        w.verifier
            .verify(&own_token(&w, own_header(&w), p), NOW)
            .is_ok()
    );
}

#[test]
fn encoding_and_shape() {
    let w = world();
    let good = own_token(&w, own_header(&w), claims());
    let (h, rest) = good.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    refused(
        &w,
        &format!("{h}+/.{p}.{s}"),
        TokenError::BadBase64("header"),
    );
    refused(
        &w,
        &format!("{h}.{p}==.{s}"),
        TokenError::BadBase64("payload"),
    );
    refused(&w, &format!("{h}.{p}.{s}!"), TokenError::BadSignature);
    let bad_json = b64(b"{\"alg\":\"EdDSA\",");
    refused(
        &w,
        &format!("{bad_json}.{p}.{s}"),
        TokenError::BadJson("header"),
    );
    let array = b64(b"[1,2]");
    refused(
        &w,
        &format!("{h}.{array}.{s}"),
        TokenError::BadJson("payload"),
    );
    // Two `sub` claims: parsers disagree on which wins, so the token is refused outright.
    let dup = b64(format!(
        r#"{{"iss":"{ISS}","sub":"alice","sub":"admin","aud":"{AUD}","exp":{}}}"#,
        NOW + 60
    )
    .as_bytes());
    refused(
        &w,
        &format!("{h}.{dup}.{s}"),
        TokenError::BadJson("payload"),
    );
    refused(
        &w,
        &format!("{good}.extra"),
        TokenError::Malformed("expected three dot-separated parts"),
    );
    refused(
        &w,
        &format!("{good}."),
        TokenError::Malformed("expected three dot-separated parts"),
    );
    refused(
        &w,
        &format!("{h}.{p}"),
        TokenError::Malformed("expected three dot-separated parts"),
    );
    refused(
        &w,
        &format!("{h}.{p}."),
        TokenError::Malformed("an empty signature"),
    );
    let mut p2 = claims();
    p2["pad"] = json!("x".repeat(9000));
    refused(
        &w,
        &own_token(&w, own_header(&w), p2),
        TokenError::Oversized(8192),
    );
    let no_alg = b64(json!({"typ": "at+jwt"}).to_string().as_bytes());
    refused(
        &w,
        &format!("{no_alg}.{p}.{s}"),
        TokenError::BadJson("header"),
    );
}

#[test]
fn headers_that_carry_or_point_to_keys_and_crit() {
    let w = world();
    let mut h = own_header(&w);
    h["crit"] = json!(["exp"]);
    refused(&w, &own_token(&w, h, claims()), TokenError::CritHeader);
    for (name, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut h = own_header(&w);
        h[name] = value;
        refused(
            &w,
            &own_token(&w, h, claims()),
            TokenError::KeyInHeader(name),
        );
    }
}

#[test]
fn signatures_and_types() {
    let w = world();
    // Same kid, another private key.
    let t = mcp_guard_auth::danger::sign_with(&w.other_own, &own_header(&w), &claims()).unwrap();
    refused(&w, &t, TokenError::BadSignature);
    // A signature copied from another token.
    let a = own_token(&w, own_header(&w), claims());
    let mut other = claims();
    other["sub"] = json!("admin");
    let b = own_token(&w, own_header(&w), other);
    let sig_a = a.rsplit_once('.').unwrap().1;
    let body_b = b.rsplit_once('.').unwrap().0;
    refused(&w, &format!("{body_b}.{sig_a}"), TokenError::BadSignature);
    // Our own issuer requires typ at+jwt.
    let mut h = own_header(&w);
    h["typ"] = json!("JWT");
    refused(&w, &own_token(&w, h, claims()), TokenError::WrongTyp);
    // A refresh token is not an access token.
    let refresh = w.issuer.refresh("alice", "client-1", "fam-1", NOW).unwrap();
    refused(&w, refresh.token.expose(), TokenError::RefreshAsAccess);
    assert!(
        w.verifier
            .verify_refresh(refresh.token.expose(), NOW)
            .is_ok()
    );
    // And an access token is not a refresh token.
    let access = own_token(&w, own_header(&w), claims());
    assert_eq!(
        w.verifier.verify_refresh(&access, NOW).unwrap_err(),
        TokenError::WrongTyp
    );
    // A type claim alone marks a refresh token too.
    let mut p = claims();
    p["type"] = json!("refresh");
    refused(
        &w,
        &own_token(&w, own_header(&w), p),
        TokenError::RefreshAsAccess,
    );
    // No subject and no client.
    let mut p = claims();
    p.as_object_mut().unwrap().remove("sub");
    refused(&w, &own_token(&w, own_header(&w), p), TokenError::NoSubject);
}

#[test]
fn revoked_jti_is_refused_even_after_a_cache_hit() {
    let w = world();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let authn = TokenAuthenticator::new(w.verifier.clone(), store.clone(), 1000);
    let token = own_token(&w, own_header(&w), claims());
    assert!(authn.authenticate(&token, NOW).is_ok());
    assert!(authn.authenticate(&token, NOW).is_ok(), "a cache hit");
    authn.revoke("j-1", NOW + 600).unwrap();
    match authn.authenticate(&token, NOW) {
        Err(AuthnError::Token(TokenError::Revoked)) => {}
        other => panic!("expected Revoked, got {other:?}"),
    }
    // Revoked in the store by someone else: a fresh authenticator sees it.
    let fresh = TokenAuthenticator::new(w.verifier.clone(), store, 1000);
    assert!(matches!(
        fresh.authenticate(&token, NOW),
        Err(AuthnError::Token(TokenError::Revoked))
    ));
}

#[test]
fn the_fingerprinted_path_shares_the_cache_and_refuses_the_same() {
    let w = world();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let authn = TokenAuthenticator::new(w.verifier.clone(), store, 1000);
    let token = own_token(&w, own_header(&w), claims());
    let (fingerprint, verified) = authn.authenticate_fingerprinted(&token, NOW);
    assert_eq!(fingerprint, Fingerprint::of(token.as_bytes()));
    assert_eq!(verified.unwrap().principal.subject, "alice");
    assert_eq!(authn.cache_counts(), (0, 1));
    assert!(authn.authenticate(&token, NOW).is_ok());
    assert_eq!(authn.cache_counts(), (1, 1), "one cache for both calls");

    // Another signature on the same claims: another key, and refused.
    let (head, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", b64(&[0u8; 32]));
    let (forged_fingerprint, refused) = authn.authenticate_fingerprinted(&forged, NOW);
    assert_eq!(forged_fingerprint, Fingerprint::of(forged.as_bytes()));
    assert_ne!(forged_fingerprint, fingerprint);
    assert!(matches!(
        refused,
        Err(AuthnError::Token(TokenError::BadSignature))
    ));

    authn.revoke("j-1", NOW + 600).unwrap();
    assert!(matches!(
        authn.authenticate_fingerprinted(&token, NOW).1,
        Err(AuthnError::Token(TokenError::Revoked))
    ));
}
