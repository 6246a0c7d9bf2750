//! Keys: fresh random ones (`jack key new NAME`), the hex both sides of
//! a `key_sha256` entry use, and the warning about secrets short enough to
//! guess ([`weak_secrets`]). Must not print a key anywhere but `key new`'s
//! own stdout.

use std::io::Read;

use sha2::Digest;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` bytes from the kernel's CSPRNG (`/dev/urandom`), as lower-case hex.
pub fn random_hex<const N: usize>() -> std::io::Result<String> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex(&bytes))
}

/// The SHA-256 of `key`, as `key_sha256` wants it.
pub fn sha256_hex(key: &str) -> String {
    hex(&sha2::Sha256::digest(key.as_bytes()))
}

/// What `jack key new NAME` prints: the key (256 random bits, hex) and the
/// two entries that let it in, to paste into `jack.toml`.
pub fn new_entry(name: &str, key: &str) -> String {
    format!(
        "# key for {name}: give it to them (it goes in their [[peers]] api_key)\n\
         {key}\n\
         \n\
         # paste one of these into jack.toml, then send jack SIGHUP:\n\
         [[server.peer_keys]]\n\
         name = \"{name}\"\n\
         key = \"{key}\"\n\
         \n\
         # or, to keep only its hash on this node:\n\
         # [[server.peer_keys]]\n\
         # name = \"{name}\"\n\
         # key_sha256 = \"{}\"\n",
        sha256_hex(key)
    )
}

/// Secrets shorter than this are warned about: at the guess budget's 10
/// a minute, 16 random characters are out of reach, a word is not.
pub const MIN_SECRET_CHARS: usize = 16;

/// A warning for each guessable secret of `config` (the owner key and the
/// qBittorrent password shorter than [`MIN_SECRET_CHARS`]), naming the key
/// and how to make a good one; never the secret itself.
pub fn weak_secrets(config: &crate::config::Config) -> Vec<String> {
    let mut short = Vec::new();
    if config.server.api_key.expose().chars().count() < MIN_SECRET_CHARS {
        short.push("server.api_key");
    }
    if let Some(q) = &config.qbittorrent
        && q.password.expose().chars().count() < MIN_SECRET_CHARS
    {
        short.push("qbittorrent.password");
    }
    short
        .into_iter()
        .map(|key| {
            format!(
                "{key} is shorter than {MIN_SECRET_CHARS} characters and can be guessed: \
                 make one with `jack key new owner` and use its key"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_keys_are_hex_and_differ() {
        let a = random_hex::<32>().unwrap();
        let b = random_hex::<32>().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
