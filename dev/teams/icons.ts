import { encodePng, type RgbaImage } from './png';

// The Teams app's icons, drawn in code so that the repository holds no image it cannot rebuild:
// a bell. Teams wants a full-colour 192×192 icon and a 32×32 outline icon that is white on a
// transparent background (alpha allowed). Replace teams/color.png and teams/outline.png with your
// organisation's own at those sizes; `npm run teams:package` checks the sizes.

/** Coverage of the bell at (x, y) in the unit square, 0 or 1. */
function inBell(x: number, y: number): boolean {
  const dx = x - 0.5;
  // Dome: the upper half of an ellipse.
  if (y <= 0.46 && y >= 0.2 && (dx / 0.25) ** 2 + ((y - 0.46) / 0.26) ** 2 <= 1) return true;
  // Skirt: widening from the dome to the brim.
  if (y > 0.46 && y <= 0.66 && Math.abs(dx) <= 0.25 + ((y - 0.46) / 0.2) * 0.08) return true;
  // Brim.
  if (y > 0.66 && y <= 0.72 && Math.abs(dx) <= 0.36) return true;
  // Clapper, and the knob on top.
  if (dx ** 2 + (y - 0.79) ** 2 <= 0.07 ** 2) return true;
  return dx ** 2 + (y - 0.19) ** 2 <= 0.045 ** 2;
}

/** Fraction of a pixel the bell covers, supersampled 4×4 so the edges are smooth. */
function coverage(px: number, py: number, size: number, inset: number): number {
  let hits = 0;
  for (let sy = 0; sy < 4; sy++) {
    for (let sx = 0; sx < 4; sx++) {
      const u = ((px + (sx + 0.5) / 4) / size - inset) / (1 - 2 * inset);
      const v = ((py + (sy + 0.5) / 4) / size - inset) / (1 - 2 * inset);
      if (inBell(u, v)) hits++;
    }
  }
  return hits / 16;
}

function draw(
  size: number,
  inset: number,
  pixel: (cover: number) => [number, number, number, number],
): RgbaImage {
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) rgba.set(pixel(coverage(x, y, size, inset)), (y * size + x) * 4);
  }
  return { width: size, height: size, rgba };
}

/** The accent colour of teams/manifest.json, behind a white bell. */
const ACCENT: [number, number, number] = [0x2b, 0x6c, 0xb0];

export function colorIcon(): Buffer {
  return encodePng(
    draw(192, 0.14, (c) => {
      const mix = (bg: number): number => Math.round(bg + (255 - bg) * c);
      return [mix(ACCENT[0]), mix(ACCENT[1]), mix(ACCENT[2]), 255];
    }),
  );
}

export function outlineIcon(): Buffer {
  return encodePng(draw(32, 0.03, (c) => [255, 255, 255, Math.round(255 * c)]));
}
