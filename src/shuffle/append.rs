//! Appending a bucket's staged records with streaming stores.

/// Appends `bytes` to `bucket` with non-temporal stores where the destination is 16-byte
/// aligned: the bucket's lines are written without first being read into the cache.
pub fn append_streaming(bucket: &mut Vec<u8>, bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        bucket.reserve(bytes.len());
        let len = bucket.len();
        // SAFETY: `reserve` made room for `bytes.len()` more bytes past `len`; every byte
        // up to the new length is written below before `set_len`; the streamed stores are
        // 16-byte aligned (checked) and fenced before the bucket can be read.
        unsafe {
            let dst = bucket.as_mut_ptr().add(len);
            let head = dst.align_offset(16).min(bytes.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, head);
            let mut at = head;
            while at + 16 <= bytes.len() {
                let v = _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>());
                _mm_stream_si128(dst.add(at).cast::<__m128i>(), v);
                at += 16;
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr().add(at), dst.add(at), bytes.len() - at);
            _mm_sfence();
            bucket.set_len(len + bytes.len());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    bucket.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::append_streaming;

    #[test]
    fn streamed_appends_are_plain_appends_at_any_alignment_and_length() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        for first in [0, 1, 7, 15, 16, 17, 33] {
            for len in [0, 1, 15, 16, 17, 100, 512, 600, 700] {
                let mut streamed: Vec<u8> = bytes[..first].to_vec();
                let mut plain = streamed.clone();
                append_streaming(&mut streamed, &bytes[..len]);
                append_streaming(&mut streamed, &bytes[3..3 + len.min(600)]);
                plain.extend_from_slice(&bytes[..len]);
                plain.extend_from_slice(&bytes[3..3 + len.min(600)]);
                assert_eq!(streamed, plain, "after {first} bytes, {len}");
            }
        }
    }
}
