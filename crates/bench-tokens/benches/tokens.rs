//! Token verification benchmarks: mcp-guard's verifier against the raw signature check of the
//! same bytes, for HS256, ES256, RS256 and EdDSA, and a verification cache hit.
//!
//! Run with `cargo bench -p mcp-guard-bench-tokens`. For each algorithm one access token is
//! issued by `TokenIssuer` with a fresh key, and a `Verifier` is built for its issuer. Then:
//!
//! - `verify/ours/<alg>` times `Verifier::verify` on that token: size and shape checks, base64
//!   and strict JSON parsing of header and payload, header checks, issuer and key lookup, the
//!   signature, the claims, and the mapping to a principal. The principal's attributes (the
//!   unregistered claims) are checked but built only when first read, which this does not time.
//! - `verify/raw/<alg>` times only the check of the same signature over the same signing input
//!   (`header.payload`) with the primitive our path uses: RustCrypto's `hmac` for HS256, aws-lc-rs
//!   for the others. The signing input and the decoded signature are computed once, before timing;
//!   the HMAC key is built once; public keys are passed as bytes to `UnparsedPublicKey`, as
//!   `jsonwebtoken` does.
//! - `verify/raw_aws_lc/HS256` times aws-lc-rs's HMAC of the same bytes, which our path used until
//!   token run 22, for reference.
//! - `verify/cache_hit/EdDSA` times `TokenAuthenticator::authenticate` on an EdDSA token that is
//!   already cached: a SHA-256 of the token and a cache lookup.
//!
//! Every path is checked to succeed before it is timed, so a broken setup cannot benchmark an
//! error path.
//!
//! Criterion times `ours` and `raw` one after the other, several seconds apart, and this shared
//! machine's speed can change by tens of percent between them. So after criterion, the same pairs
//! run again interleaved (`interleaved/<alg>`): short timed blocks of the raw check and of our
//! verifier alternate, and the ratio reported is the median of the ratios of neighbouring blocks,
//! which a change of speed during the run affects alike. The tenth percentile of our blocks is
//! printed too: the machine's slow stretches slow our branchy code far more than the raw check.

#![expect(
    clippy::expect_used,
    reason = "a benchmark cannot run without its keys and tokens; failing loudly is right"
)]

// The `mcp-guard` binary's allocator, so that the path is timed with the allocator it runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac as aws_hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group};
use hmac::{KeyInit, Mac};
use mcp_guard_auth::store::MemoryStore;
use mcp_guard_auth::token::{
    AccessClaims, Algorithm, IssuerPolicy, KeySet, SigningKey, TokenAuthenticator, TokenIssuer,
    Verifier,
};

const ISS: &str = "https://gw.example";
const AUD: &str = "https://gw.example/mcp";
const HS256_SECRET: [u8; 32] = [7u8; 32];

/// The raw check a token's signature gets, with its key already in hand.
enum Raw {
    /// RustCrypto's HMAC, with its inner and outer states computed once, as in our path.
    Hmac(Box<hmac::Hmac<sha2::Sha256>>),
    /// Boxed: an aws-lc-rs HMAC key holds its precomputed state inline (over 1 KiB).
    AwsLcHmac(Box<aws_hmac::Key>),
    Public(&'static dyn VerificationAlgorithm, Vec<u8>),
}

impl Raw {
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            Raw::Hmac(key) => {
                let mut mac = (**key).clone();
                mac.update(msg);
                mac.verify_slice(sig).is_ok()
            }
            Raw::AwsLcHmac(key) => aws_hmac::verify(key, msg, sig).is_ok(),
            Raw::Public(alg, public) => UnparsedPublicKey::new(*alg, public)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

/// One algorithm's setup: a token, the verifier for its issuer, and the raw check of its bytes.
struct Case {
    name: &'static str,
    token: String,
    verifier: Verifier,
    raw: Raw,
    /// `header.payload`, the signing input.
    msg: Vec<u8>,
    /// The decoded signature.
    sig: Vec<u8>,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit in i64")
}

/// Issues a token with `key`, builds the verifier for its issuer, and splits the token.
fn case(name: &'static str, key: SigningKey, raw: Raw, now: i64) -> Case {
    let alg = key.alg();
    let mut keys = KeySet::new();
    keys.insert(key.verify_key().clone());
    let verifier = Verifier::new(vec![IssuerPolicy {
        issuer: ISS.into(),
        own: true,
        audiences: vec![AUD.into()],
        algorithms: vec![alg],
        keys,
        required_typ: Some("at+jwt".into()),
        roles_claim: "roles".into(),
    }]);
    let issuer = TokenIssuer::new(
        ISS,
        AUD,
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
        Arc::new(key),
    );
    let claims = AccessClaims {
        subject: "alice".into(),
        permissions: vec!["tools:execute:echo".into()],
        ..Default::default()
    };
    let token = issuer
        .access(&claims, now)
        .expect("issue an access token")
        .token
        .expose()
        .to_owned();
    let (msg, s64) = token.rsplit_once('.').expect("a three-part token");
    let sig = URL_SAFE_NO_PAD.decode(s64).expect("a base64url signature");
    Case {
        name,
        msg: msg.as_bytes().to_vec(),
        sig,
        token,
        verifier,
        raw,
    }
}

fn cases(now: i64) -> Vec<Case> {
    let rng = SystemRandom::new();

    let hs256 = SigningKey::hs256("hs256", &HS256_SECRET).expect("HS256 key");
    let hs256_raw = Raw::Hmac(Box::new(
        hmac::Hmac::new_from_slice(&HS256_SECRET).expect("HMAC takes any key length"),
    ));

    let es256_der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .expect("P-256 key")
        .as_ref()
        .to_vec();
    let es256_point = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &es256_der)
        .expect("P-256 key parses")
        .public_key()
        .as_ref()
        .to_vec();
    let es256 = SigningKey::from_pkcs8(Algorithm::ES256, &es256_der).expect("ES256 key");

    // RSA keys go in as a PKCS#8 PEM, the way an operator supplies them.
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key");
    let rsa_pem = pem(
        "PRIVATE KEY",
        rsa.as_der().expect("RSA key as PKCS#8").as_ref(),
    );
    // PKCS#1 `RSAPublicKey` DER, what `RSA_PKCS1_2048_8192_SHA256` takes.
    let rsa_public = rsa.public_key().as_ref().to_vec();
    let rs256 = SigningKey::from_private_pem(Algorithm::RS256, rsa_pem.as_bytes()).expect("RS256");

    let ed_der = Ed25519KeyPair::generate_pkcs8(&rng)
        .expect("Ed25519 key")
        .as_ref()
        .to_vec();
    let ed_public = Ed25519KeyPair::from_pkcs8(&ed_der)
        .expect("Ed25519 key parses")
        .public_key()
        .as_ref()
        .to_vec();
    let eddsa = SigningKey::from_pkcs8(Algorithm::EdDSA, &ed_der).expect("EdDSA key");

    vec![
        case("HS256", hs256, hs256_raw, now),
        case(
            "ES256",
            es256,
            Raw::Public(&ECDSA_P256_SHA256_FIXED, es256_point),
            now,
        ),
        case(
            "RS256",
            rs256,
            Raw::Public(&RSA_PKCS1_2048_8192_SHA256, rsa_public),
            now,
        ),
        case("EdDSA", eddsa, Raw::Public(&ED25519, ed_public), now),
    ]
}

fn verify(c: &mut Criterion) {
    let now = now();
    let cases = cases(now);
    for case in &cases {
        let verified = case
            .verifier
            .verify(&case.token, now)
            .unwrap_or_else(|e| panic!("{}: our verifier refused its token: {e}", case.name));
        assert_eq!(verified.principal.subject, "alice", "{}", case.name);
        assert!(
            case.raw.verify(&case.msg, &case.sig),
            "{}: raw signature check failed",
            case.name
        );
        let mut forged = case.sig.clone();
        if let Some(b) = forged.last_mut() {
            *b ^= 1;
        }
        assert!(
            !case.raw.verify(&case.msg, &forged),
            "{}: raw check accepts a forged signature",
            case.name
        );
    }

    let hs256 = cases
        .iter()
        .find(|c| c.name == "HS256")
        .expect("an HS256 case");
    let aws_lc_hs256 = Raw::AwsLcHmac(Box::new(aws_hmac::Key::new(
        aws_hmac::HMAC_SHA256,
        &HS256_SECRET,
    )));
    assert!(aws_lc_hs256.verify(&hs256.msg, &hs256.sig));

    let eddsa = cases
        .iter()
        .find(|c| c.name == "EdDSA")
        .expect("an EdDSA case");
    let authn =
        TokenAuthenticator::new(eddsa.verifier.clone(), Arc::new(MemoryStore::new()), 10_000);
    let first = authn
        .authenticate(&eddsa.token, now)
        .expect("the EdDSA token authenticates");
    let hit = authn
        .authenticate(&eddsa.token, now)
        .expect("the EdDSA token authenticates again");
    assert!(Arc::ptr_eq(&first, &hit), "the second call is a cache hit");

    let mut g = c.benchmark_group("verify");
    for case in &cases {
        g.bench_function(format!("ours/{}", case.name), |b| {
            b.iter(|| case.verifier.verify(black_box(&case.token), black_box(now)));
        });
        g.bench_function(format!("raw/{}", case.name), |b| {
            b.iter(|| case.raw.verify(black_box(&case.msg), black_box(&case.sig)));
        });
    }
    g.bench_function("raw_aws_lc/HS256", |b| {
        b.iter(|| aws_lc_hs256.verify(black_box(&hs256.msg), black_box(&hs256.sig)));
    });
    g.bench_function("cache_hit/EdDSA", |b| {
        b.iter(|| authn.authenticate(black_box(&eddsa.token), black_box(now)));
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the machine has two cores and is shared.
    Criterion::default()
        .sample_size(40)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = verify
}

/// Pairs of blocks per algorithm in the interleaved comparison.
const PAIRS: usize = 41;
/// The length a block aims at.
const BLOCK: Duration = Duration::from_millis(25);

/// Nanoseconds per call of `f` over `iterations` calls.
fn block(iterations: u32, mut f: impl FnMut() -> bool) -> f64 {
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(f());
    }
    started.elapsed().as_secs_f64() * 1e9 / f64::from(iterations)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The tenth percentile, for the speed of the machine's fast stretches: this shared VM runs
/// branchy code at about 60% speed for seconds at a time (docs/PERFORMANCE.md, token run 20).
fn tenth_percentile(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 10]
}

/// What the interleaved comparison of one algorithm gives, in ns per call.
struct Interleaved {
    ours: f64,
    ours_p10: f64,
    raw: f64,
    ratio: f64,
}

/// Our verifier and the raw check of `case` in alternating blocks: the medians of each (ns per
/// call) and of the ratios of the pairs, and our blocks' tenth percentile.
fn interleaved(case: &Case, now: i64) -> Interleaved {
    let ours = || {
        case.verifier
            .verify(black_box(&case.token), black_box(now))
            .is_ok()
    };
    let raw = || case.raw.verify(black_box(&case.msg), black_box(&case.sig));
    // Sized from a short warm-up so that a block takes about `BLOCK`.
    let estimate = block(64, ours).max(1.0);
    let iterations = (BLOCK.as_secs_f64() * 1e9 / estimate).clamp(8.0, 1e6) as u32;
    let (mut o, mut r, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..PAIRS {
        // Which goes first alternates too, so that neither always follows the other.
        let (a, b) = if pair % 2 == 0 {
            let a = block(iterations, raw);
            (a, block(iterations, ours))
        } else {
            let b = block(iterations, ours);
            (block(iterations, raw), b)
        };
        r.push(a);
        o.push(b);
        ratio.push(b / a);
    }
    Interleaved {
        ours: median(&mut o),
        ours_p10: tenth_percentile(&mut o),
        raw: median(&mut r),
        ratio: median(&mut ratio),
    }
}

/// The interleaved comparison, for the algorithms the command line's filter (if any) names.
#[expect(
    clippy::print_stdout,
    reason = "a benchmark's report goes to standard output, beside criterion's"
)]
fn interleaved_all() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test` runs this binary without `--bench`: then criterion only checks that each
    // benchmark runs, and so does this.
    let quick = !args.iter().any(|a| a == "--bench");
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let now = now();
    let cases = cases(now);
    let chosen: Vec<&Case> = cases
        .iter()
        .filter(|c| filter.is_none_or(|f| format!("interleaved/{}", c.name).contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        return;
    }
    if quick {
        for case in chosen {
            assert!(case.verifier.verify(&case.token, now).is_ok());
            assert!(case.raw.verify(&case.msg, &case.sig));
        }
        return;
    }
    println!();
    println!(
        "interleaved: {PAIRS} pairs of alternating blocks of about {} ms, medians",
        BLOCK.as_millis()
    );
    println!("| Benchmark | ours (ns) | ours, p10 of blocks (ns) | raw (ns) | ours / raw |");
    println!("|---|---:|---:|---:|---:|");
    for case in chosen {
        let r = interleaved(case, now);
        println!(
            "| `interleaved/{}` | {:.0} | {:.0} | {:.0} | {:.3}x |",
            case.name, r.ours, r.ours_p10, r.raw, r.ratio
        );
    }
}

fn main() {
    benches();
    interleaved_all();
    Criterion::default().configure_from_args().final_summary();
}
