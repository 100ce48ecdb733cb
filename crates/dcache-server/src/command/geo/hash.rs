//! Redis's geohash arithmetic, step for step, so that scores, positions, distances and the boxes
//! a search visits are Redis's to the last bit.
//!
//! A position is a 52-bit score: latitude and longitude each cut into 2^26 steps over
//! [-85.05112878, 85.05112878] and [-180, 180] (the Web Mercator square), their bits
//! interleaved (latitude in the even bits). A search covers its shape with the box of the centre
//! and its eight neighbours at a depth chosen from the radius, and checks every point of those
//! boxes against the shape with the haversine distance on a sphere of radius 6372797.560856 m.

pub const LAT_MIN: f64 = -85.051_128_78;
pub const LAT_MAX: f64 = 85.051_128_78;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
/// 26 steps of each coordinate: 52 bits.
pub const STEP_MAX: u8 = 26;
pub const EARTH_RADIUS_IN_METERS: f64 = 6_372_797.560_856;
const MERCATOR_MAX: f64 = 20_037_726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

/// Some bits of a geohash and how many steps they hold (a zero hash marks a box left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bits {
    pub bits: u64,
    pub step: u8,
}

impl Bits {
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// The box a geohash stands for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

/// What a search covers.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A radius, in the unit.
    Circle(f64),
    /// Width and height, in the unit.
    Box(f64, f64),
}

/// A search: its centre (longitude, latitude), shape, and the unit's size in meters.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub center: [f64; 2],
    pub shape: Shape,
    pub conversion: f64,
}

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

fn interleave64(xlo: u32, ylo: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = u64::from(xlo);
    let mut y = u64::from(ylo);
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
        0x0000_0000_FFFF_FFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// The Web Mercator ranges Redis indexes: (longitude, latitude).
#[must_use]
pub fn coord_range() -> (Range, Range) {
    (
        Range {
            min: LONG_MIN,
            max: LONG_MAX,
        },
        Range {
            min: LAT_MIN,
            max: LAT_MAX,
        },
    )
}

/// The geohash of a position over the given ranges; `None` outside Redis's limits.
#[must_use]
pub fn encode(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<Bits> {
    if step > 32 || step == 0 {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * scale;
    Some(Bits {
        bits: interleave64(lat_offset as u32, long_offset as u32),
        step,
    })
}

/// The 52-bit score of a position (already checked to be within the limits).
#[must_use]
pub fn score_of(longitude: f64, latitude: f64) -> u64 {
    let (lon, lat) = coord_range();
    let hash = encode(lon, lat, longitude, latitude, STEP_MAX).unwrap_or_default();
    align52(hash)
}

fn align52(hash: Bits) -> u64 {
    hash.bits << (52 - u32::from(hash.step) * 2)
}

fn decode(long_range: Range, lat_range: Range, hash: Bits) -> Area {
    let step = hash.step;
    let sep = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = sep as u32;
    let ilono = (sep >> 32) as u32;
    let div = (1u64 << step) as f64;
    // `ilato + 1` is 32-bit arithmetic in Redis: it wraps.
    Area {
        latitude: Range {
            min: lat_range.min + (f64::from(ilato) / div) * lat_scale,
            max: lat_range.min + (f64::from(ilato.wrapping_add(1)) / div) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (f64::from(ilono) / div) * long_scale,
            max: long_range.min + (f64::from(ilono.wrapping_add(1)) / div) * long_scale,
        },
    }
}

/// C's conversion of a double to `uint64_t` on x86-64, which Redis applies to any score
/// (a sorted set written by ZADD may hold scores that no GEOADD made).
fn c_u64(x: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    const INDEFINITE: u64 = 1 << 63;
    if x.is_nan() {
        INDEFINITE
    } else if x < TWO63 {
        if x < -TWO63 {
            INDEFINITE
        } else {
            x as i64 as u64
        }
    } else {
        let shifted = x - TWO63;
        if shifted < TWO63 {
            (shifted as i64 as u64) ^ INDEFINITE
        } else {
            0
        }
    }
}

/// The position (longitude, latitude) a score stands for: the centre of its 52-bit box,
/// clamped to the limits.
#[must_use]
pub fn decode_score(score: f64) -> [f64; 2] {
    let (lon, lat) = coord_range();
    let area = decode(
        lon,
        lat,
        Bits {
            bits: c_u64(score),
            step: STEP_MAX,
        },
    );
    [
        ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX),
        ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX),
    ]
}

/// The standard 11-character geohash of a score, as GEOHASH gives it (re-encoded over latitude
/// [-90, 90]; the eleventh character is always `0`).
#[must_use]
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [longitude, latitude] = decode_score(score);
    let hash = encode(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        longitude,
        latitude,
        STEP_MAX,
    )
    .unwrap_or_default();
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((hash.bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

/// The distance along a meridian.
fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// Redis's haversine distance in meters.
#[must_use]
pub fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

impl Search {
    /// The distance from the centre to `xy` when it lies within the shape.
    #[must_use]
    pub fn contains(&self, xy: [f64; 2]) -> Option<f64> {
        let [x1, y1] = self.center;
        let [x2, y2] = xy;
        match self.shape {
            Shape::Circle(radius) => {
                let d = distance(x1, y1, x2, y2);
                (d <= radius * self.conversion).then_some(d)
            }
            Shape::Box(width, height) => {
                // Latitude first: it is the cheaper distance.
                if lat_distance(y2, y1) > height * self.conversion / 2.0 {
                    return None;
                }
                if distance(x2, y2, x1, y2) > width * self.conversion / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, x2, y2))
            }
        }
    }

    /// The search's bounding box: min longitude, min latitude, max longitude, max latitude.
    fn bounds(&self) -> [f64; 4] {
        let [longitude, latitude] = self.center;
        let (width, height) = match self.shape {
            Shape::Circle(r) => (r, r),
            Shape::Box(w, h) => (w / 2.0, h / 2.0),
        };
        let height = self.conversion * height;
        let width = self.conversion * width;
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
        let southern = latitude < 0.0;
        [
            if southern {
                longitude - long_delta_bottom
            } else {
                longitude - long_delta_top
            },
            latitude - lat_delta,
            if southern {
                longitude + long_delta_bottom
            } else {
                longitude + long_delta_top
            },
            latitude + lat_delta,
        ]
    }

    /// The boxes to scan, in Redis's order (centre, north, south, east, west, north-east,
    /// north-west, south-east, south-west), with boxes left out or repeating the one before
    /// removed: each is a range of scores, `min <= score < max`.
    #[must_use]
    pub fn boxes(&self) -> Vec<(f64, f64)> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let [longitude, latitude] = self.center;
        let radius_meters = match self.shape {
            Shape::Circle(r) => r,
            Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, latitude);
        let (long_range, lat_range) = coord_range();
        let at = |steps| {
            let hash =
                encode(long_range, lat_range, longitude, latitude, steps).unwrap_or_default();
            (hash, neighbors(hash), decode(long_range, lat_range, hash))
        };
        let (mut hash, mut around, mut area) = at(steps);
        // A step too deep at the edges of the area leaves part of the shape uncovered.
        let north = decode(long_range, lat_range, around[0]);
        let south = decode(long_range, lat_range, around[1]);
        let east = decode(long_range, lat_range, around[2]);
        let west = decode(long_range, lat_range, around[3]);
        let decrease = north.latitude.max < max_lat
            || south.latitude.min > min_lat
            || east.longitude.max < max_lon
            || west.longitude.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            (hash, around, area) = at(steps);
        }
        // around: north, south, east, west, north-east, north-west, south-east, south-west.
        if steps >= 2 {
            let mut drop = |which: &[usize]| {
                for &i in which {
                    around[i] = Bits::default();
                }
            };
            if area.latitude.min < min_lat {
                drop(&[1, 7, 6]);
            }
            if area.latitude.max > max_lat {
                drop(&[0, 4, 5]);
            }
            if area.longitude.min < min_lon {
                drop(&[3, 7, 5]);
            }
            if area.longitude.max > max_lon {
                drop(&[2, 6, 4]);
            }
        }
        let all = [
            hash, around[0], around[1], around[2], around[3], around[4], around[5], around[6],
            around[7],
        ];
        let mut boxes = Vec::with_capacity(9);
        let mut last = 0;
        for (i, b) in all.iter().enumerate() {
            if b.is_zero() {
                continue;
            }
            // Large radii make neighbours coincide: Redis skips one equal to the box before
            // (though never compares with the centre).
            if last != 0 && *b == all[last] {
                continue;
            }
            let min = align52(*b);
            let max = align52(Bits {
                bits: b.bits.wrapping_add(1),
                step: b.step,
            });
            boxes.push((min as f64, max as f64));
            last = i;
        }
        boxes
    }
}

fn estimate_steps(mut range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range_meters < MERCATOR_MAX {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

fn move_x(hash: &mut Bits, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = hash.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> (64 - u32::from(hash.step) * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - u32::from(hash.step) * 2);
    hash.bits = x | y;
}

fn move_y(hash: &mut Bits, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = hash.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - u32::from(hash.step) * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> (64 - u32::from(hash.step) * 2);
    hash.bits = x | y;
}

/// The eight neighbours: north, south, east, west, north-east, north-west, south-east,
/// south-west.
fn neighbors(hash: Bits) -> [Bits; 8] {
    let moved = |dx: i8, dy: i8| {
        let mut h = hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    };
    [
        moved(0, 1),
        moved(0, -1),
        moved(1, 0),
        moved(-1, 0),
        moved(1, 1),
        moved(-1, 1),
        moved(1, -1),
        moved(-1, -1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (a, b) in [
            (0u32, 0u32),
            (1, 2),
            (0x3ff_ffff, 0x155_5555),
            (u32::MAX, 7),
        ] {
            let sep = deinterleave64(interleave64(a, b));
            assert_eq!((sep as u32, (sep >> 32) as u32), (a, b));
        }
    }

    #[test]
    fn a_score_decodes_within_its_box() {
        for (lon, lat) in [
            (13.361389, 38.115556),
            (-180.0, -85.05112878),
            (180.0, 85.05112878),
            (0.0, 0.0),
            (-0.000001, 0.000001),
        ] {
            let score = score_of(lon, lat) as f64;
            let [x, y] = decode_score(score);
            // A box at 26 steps is 360 / 2^26 degrees wide, 170.1 / 2^26 high.
            assert!((x - lon).abs() <= 360.0 / 67_108_864.0, "{lon} {x}");
            assert!((y - lat).abs() <= 171.0 / 67_108_864.0, "{lat} {y}");
            assert!(distance(lon, lat, x, y) < 1.0);
        }
    }

    #[test]
    fn distances_are_symmetric_and_zero_at_one_point() {
        let d = distance(13.361389, 38.115556, 15.087269, 37.502669);
        assert!((d - 166_274.0).abs() < 10.0, "{d}");
        assert_eq!(d, distance(15.087269, 37.502669, 13.361389, 38.115556));
        assert_eq!(distance(1.0, 2.0, 1.0, 2.0), 0.0);
    }

    #[test]
    fn the_boxes_cover_every_point_of_the_shape() {
        // Points on a grid around a centre: each one within the shape is in some box. (Not at
        // longitude 180 or latitude 85.05112878 exactly: their score has a bit past the 52,
        // and Redis's searches miss them too.)
        for (center, shape) in [
            ([13.0, 38.0], Shape::Circle(200.0)),
            ([179.9, 10.0], Shape::Circle(50.0)),
            ([-20.0, -70.0], Shape::Box(400.0, 100.0)),
            ([0.0, 84.0], Shape::Circle(1000.0)),
        ] {
            let search = Search {
                center,
                shape,
                conversion: 1000.0,
            };
            let boxes = search.boxes();
            assert!(!boxes.is_empty() && boxes.len() <= 9);
            for i in -40..=40 {
                for j in -40..=40 {
                    let lon = (center[0] + f64::from(i) * 0.2).clamp(-179.999, 179.999);
                    let lat = (center[1] + f64::from(j) * 0.1).clamp(-85.05, 85.05);
                    let score = score_of(lon, lat) as f64;
                    if search.contains(decode_score(score)).is_some() {
                        assert!(
                            boxes.iter().any(|&(min, max)| min <= score && score < max),
                            "{lon},{lat} within {shape:?} of {center:?} but in no box"
                        );
                    }
                }
            }
        }
    }
}
