//! The guest's entry code as a QR code PNG (8-bit greyscale), for the ticket e-mail.

use qrcode::{Color, QrCode};

/// Pixels per QR module; 8 keeps small codes readable by phone cameras and decoders.
const SCALE: usize = 8;
/// The quiet zone the QR spec asks for around the code, in modules.
const QUIET: usize = 4;

pub fn png(data: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::new(data.as_bytes()).map_err(|e| format!("qr: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| format!("png: {e}"))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| format!("png: {e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_a_png() {
        let png = super::png("TKT-DEMO-0001").unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
