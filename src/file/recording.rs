//! Voice notes: whether a file is a recording this server recognises (a container it can
//! read, holding an audio track: WebM/Matroska, Ogg, MP4/M4A, MP3, WAV, FLAC) and how long
//! it lasts, read from the packets' timestamps (a browser's recording often says nothing of
//! its length). Nothing is decoded. Blocking: run off the async workers.

use std::io::Cursor;

use symphonia::core::codecs::CODEC_TYPE_NULL;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// A recording: the type to serve it as and how long it lasts.
#[derive(Debug, PartialEq, Eq)]
pub struct Recording {
    pub content_type: String,
    pub duration_ms: i64,
}

/// The recording in these bytes, sniffed as `sniffed`; `None` when they hold no audio this
/// server can read.
pub fn probe(bytes: Vec<u8>, sniffed: &str) -> Option<Recording> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .ok()?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some())?
        .clone();
    let time_base = track.codec_params.time_base?;
    let mut end: u64 = 0;
    // The last packet's end is the length; a broken tail ends the count where it breaks.
    while let Ok(packet) = format.next_packet() {
        if packet.track_id() == track.id {
            end = end.max(packet.ts().saturating_add(packet.dur()));
        }
    }
    let time = time_base.calc_time(end);
    let millis = time
        .seconds
        .saturating_mul(1000)
        .saturating_add((time.frac * 1000.0) as u64);
    // A recording in a container that also carries video is served as what it holds: audio.
    let content_type = match sniffed {
        "video/webm" => "audio/webm",
        "video/mp4" => "audio/mp4",
        other => other,
    };
    Some(Recording {
        content_type: content_type.to_owned(),
        duration_ms: i64::try_from(millis).unwrap_or(i64::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A silent mono WAV of `millis`, 8 kHz, 16 bits.
    pub fn wav(millis: u32) -> Vec<u8> {
        let rate = 8000u32;
        let data = rate * millis / 1000 * 2;
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&(36 + data).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        for field in [
            16u32.to_le_bytes().to_vec(),
            1u16.to_le_bytes().to_vec(),
            1u16.to_le_bytes().to_vec(),
        ] {
            bytes.extend_from_slice(&field);
        }
        bytes.extend_from_slice(&rate.to_le_bytes());
        bytes.extend_from_slice(&(rate * 2).to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&data.to_le_bytes());
        bytes.resize(bytes.len() + data as usize, 0);
        bytes
    }

    #[test]
    fn a_recording_is_measured_from_its_bytes() {
        let found = probe(wav(2500), "audio/x-wav");
        assert_eq!(
            found,
            Some(Recording {
                content_type: "audio/x-wav".into(),
                duration_ms: 2500
            })
        );
    }

    #[test]
    fn what_holds_no_audio_is_no_recording() {
        assert_eq!(probe(b"just some words".to_vec(), "text/plain"), None);
        assert_eq!(probe(Vec::new(), "application/octet-stream"), None);
    }
}
