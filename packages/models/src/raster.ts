/**
 * An RGB image as pixel values 0-255, row-major, channels interleaved (HWC):
 * bytes as decoded (a frame of 40 M pixels is 120 MB, not 480), floats once
 * resized or warped so that they keep their fractions.
 */
export interface Rgb {
  width: number;
  height: number;
  data: Float32Array | Uint8Array;
}

export function rgb(width: number, height: number, data: Float32Array | Uint8Array = new Float32Array(width * height * 3)): Rgb {
  if (data.length !== width * height * 3) throw new RangeError(`${data.length} values for a ${width} x ${height} RGB image`);
  return { width, height, data };
}

/**
 * Bilinear resize with TensorFlow's legacy sampling (align_corners and
 * half_pixel_centers both false: source = destination x in/out), the
 * arithmetic of tfjs's CPU kernel, so crops match face-api's to the last bit
 * that float32 keeps.
 */
export function resizeBilinear(img: Rgb, outW: number, outH: number): Rgb {
  if (img.width === outW && img.height === outH) return img;
  return resample(img, outW, outH, img.width, img.height, 0, 0);
}

/**
 * The shorter side padded with black to a square, as face-api's padToSquare
 * (all of it after the image, or, centred, round(diff / 2) after and the
 * rest before), then resized to size x size, without making the square: a
 * 6000 x 4000 frame would be a 432 MB float square.
 */
export function resizePaddedSquare(img: Rgb, size: number, centre: boolean): Rgb {
  const side = Math.max(img.width, img.height);
  const diff = side - Math.min(img.width, img.height);
  const before = centre ? diff - Math.round(diff * 0.5) : 0;
  const offsetX = img.width < img.height ? before : 0;
  const offsetY = img.height < img.width ? before : 0;
  if (side === size && diff === 0) return img;
  return resample(img, size, size, side, side, offsetX, offsetY);
}

/** The resize of `img` placed at (ox, oy) on a black w x h canvas. */
function resample(img: Rgb, outW: number, outH: number, w: number, h: number, ox: number, oy: number): Rgb {
  const out = rgb(outW, outH);
  const { width: iw, height: ih, data } = img;
  const ry = h / outH;
  const rx = w / outW;
  const xs = new Int32Array(outW * 2);
  const dxs = new Float64Array(outW);
  for (let c = 0; c < outW; c++) {
    const fx = rx * c;
    const x0 = Math.max(0, Math.floor(fx));
    dxs[c] = fx - x0;
    xs[2 * c] = x0 - ox;
    xs[2 * c + 1] = Math.min(w - 1, Math.ceil(fx)) - ox;
  }
  const px = (y: number, x: number, k: number) => (y < 0 || y >= ih || x < 0 || x >= iw ? 0 : data[(y * iw + x) * 3 + k]);
  for (let r = 0; r < outH; r++) {
    const fy = ry * r;
    const y0 = Math.max(0, Math.floor(fy));
    const dy = fy - y0;
    const y1 = Math.min(h - 1, Math.ceil(fy)) - oy;
    const ty = y0 - oy;
    for (let c = 0; c < outW; c++) {
      const x0 = xs[2 * c];
      const x1 = xs[2 * c + 1];
      const dx = dxs[c];
      const o = (r * outW + c) * 3;
      for (let k = 0; k < 3; k++) {
        const tl = px(ty, x0, k);
        const tr = px(ty, x1, k);
        const bl = px(y1, x0, k);
        const br = px(y1, x1, k);
        const top = tl + (tr - tl) * dx;
        const bottom = bl + (br - bl) * dx;
        out.data[o + k] = top + (bottom - top) * dy;
      }
    }
  }
  return out;
}

/** A whole-pixel region (the caller clips it to the image). */
export function crop(img: Rgb, x: number, y: number, width: number, height: number): Rgb {
  if (x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > img.width || y + height > img.height) {
    throw new RangeError(`crop ${width} x ${height} at (${x}, ${y}) is not inside the ${img.width} x ${img.height} image`);
  }
  const out = rgb(width, height);
  for (let r = 0; r < height; r++) out.data.set(img.data.subarray(((y + r) * img.width + x) * 3, ((y + r) * img.width + x + width) * 3), r * width * 3);
  return out;
}

/**
 * Samples `size` x `size` pixels through an affine map from output to source
 * coordinates (sx = a*x + b*y + c, sy = d*x + e*y + f, pixel centres at
 * integers), bilinear; outside the source is black, as face-api pads.
 */
export function warpAffine(img: Rgb, size: number, [a, b, c, d, e, f]: readonly number[]): Rgb {
  const out = rgb(size, size);
  const { width: w, height: h, data } = img;
  const at = (x: number, y: number, k: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : data[(y * w + x) * 3 + k]);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const sx = a * x + b * y + c;
      const sy = d * x + e * y + f;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const dx = sx - x0;
      const dy = sy - y0;
      const o = (y * size + x) * 3;
      for (let k = 0; k < 3; k++) {
        const top = at(x0, y0, k) + (at(x0 + 1, y0, k) - at(x0, y0, k)) * dx;
        const bottom = at(x0, y0 + 1, k) + (at(x0 + 1, y0 + 1, k) - at(x0, y0 + 1, k)) * dx;
        out.data[o + k] = top + (bottom - top) * dy;
      }
    }
  }
  return out;
}

/** (pixel - mean) / std per channel, laid out channels first into `out` at `offset`. */
export function toChw(img: Rgb, mean: readonly number[], std: readonly number[], out = new Float32Array(img.width * img.height * 3), offset = 0): Float32Array {
  const plane = img.width * img.height;
  for (let k = 0; k < 3; k++) {
    const m = mean[k];
    const inv = 1 / std[k];
    const base = offset + k * plane;
    for (let i = 0; i < plane; i++) out[base + i] = (img.data[i * 3 + k] - m) * inv;
  }
  return out;
}

/**
 * Variance of the 4-neighbour Laplacian of the luma: the usual focus measure.
 * Sharp faces score in the hundreds, defocused ones in single figures.
 */
export function laplacianVariance(img: Rgb): number {
  const { width: w, height: h, data } = img;
  const luma = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) luma[i] = 0.299 * data[i * 3] + 0.587 * data[i * 3 + 1] + 0.114 * data[i * 3 + 2];
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const v = luma[i - 1] + luma[i + 1] + luma[i - w] + luma[i + w] - 4 * luma[i];
      sum += v;
      sumSq += v * v;
      n++;
    }
  }
  return n === 0 ? 0 : sumSq / n - (sum / n) ** 2;
}
