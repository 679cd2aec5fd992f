// A `return` that a macro writes (anyhow's `bail!`) cannot be carried out of the block's
// closure: it does not compile (rather than return from the block alone). Write the
// `return` in the block.
use lockkit::{locked, ShmMutex};

macro_rules! bail {
    ($e:expr) => {
        return Err($e)
    };
}

fn check(m: &ShmMutex<u32>) -> Result<u32, String> {
    locked!(g = m => {
        if *g > 1 {
            bail!("too many".to_string());
        }
        Ok(*g)
    })
}

fn main() {
    let _ = check;
}
