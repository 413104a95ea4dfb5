//! A photo's thumbnail for our album: decoded with limits (a "photo" that would decode to
//! more pixels than `DUET_MAX_IMAGE_PIXELS` is refused before any pixel is made), turned as
//! its EXIF orientation says, shrunk to fit `EDGE` and encoded again, which leaves every
//! piece of metadata (the place it was taken, the camera) behind. Decoding is CPU work: it
//! runs on the blocking pool, at most `DUET_THUMBNAIL_CONCURRENCY` at once.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, Rgba, RgbaImage, imageops};

/// The longest side of a thumbnail, in pixels: a grid cell on a phone at 2x.
pub const EDGE: u32 = 400;
/// JPEG quality of a thumbnail.
const QUALITY: u8 = 80;

/// A thumbnail (a JPEG): its bytes and size.
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Whether an image of this size may be decoded.
pub fn allowed(width: i32, height: i32, max_pixels: u64) -> bool {
    let pixels = u64::try_from(width)
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::try_from(height).unwrap_or(u64::MAX));
    pixels <= max_pixels
}

/// Makes the thumbnail of an image's bytes. Blocking: run it off the async workers.
pub fn render(bytes: &[u8], max_pixels: u64) -> image::ImageResult<Thumbnail> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format()?;
    let mut limits = Limits::default();
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    // Room for the decoded pixels at 8 bytes each (16-bit RGBA), and nothing more.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let (width, height) = decoder.dimensions();
    if u64::from(width).saturating_mul(u64::from(height)) > max_pixels {
        return Err(image::ImageError::Limits(
            image::error::LimitError::from_kind(image::error::LimitErrorKind::DimensionError),
        ));
    }
    let orientation = decoder.orientation()?;
    let mut picture = DynamicImage::from_decoder(decoder)?;
    picture.apply_orientation(orientation);
    // Only ever smaller: a photo that fits already keeps its pixels.
    let small = if picture.width() > EDGE || picture.height() > EDGE {
        picture.thumbnail(EDGE, EDGE)
    } else {
        picture
    };
    // Transparent parts over white, as the album shows them (JPEG has no alpha).
    let opaque = if small.color().has_alpha() {
        let mut canvas = RgbaImage::from_pixel(small.width(), small.height(), Rgba([255; 4]));
        imageops::overlay(&mut canvas, &small.to_rgba8(), 0, 0);
        DynamicImage::ImageRgba8(canvas).to_rgb8()
    } else {
        small.to_rgb8()
    };
    let mut bytes = Vec::new();
    let encoder = JpegEncoder::new_with_quality(&mut bytes, QUALITY);
    DynamicImage::ImageRgb8(opaque).write_with_encoder(encoder)?;
    Ok(Thumbnail {
        bytes,
        width: small.width(),
        height: small.height(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = DynamicImage::new_rgb8(width, height);
        let mut bytes = Vec::new();
        picture
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
            .unwrap();
        bytes
    }

    #[test]
    fn a_thumbnail_fits_the_edge_and_keeps_the_shape() {
        let thumb = render(&jpeg(1200, 600), 40_000_000).unwrap();
        assert_eq!((thumb.width, thumb.height), (400, 200));
        assert_eq!(&thumb.bytes[..2], [0xFF, 0xD8], "a JPEG");
        let small = render(&jpeg(120, 90), 40_000_000).unwrap();
        assert_eq!((small.width, small.height), (120, 90));
    }

    #[test]
    fn an_image_over_the_pixel_limit_is_not_decoded() {
        assert!(render(&jpeg(300, 300), 300 * 299).is_err());
        assert!(!allowed(100_000, 100_000, 40_000_000));
        assert!(allowed(6000, 4000, 40_000_000));
    }
}
