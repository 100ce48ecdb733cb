//! CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection, no final XOR), the checksum
//! Redis Cluster uses for key slots. Table-driven; the table is built at compile time.

const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC16/XMODEM of `data`.
#[must_use]
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_standard_check_value() {
        // The CRC catalogue's check value for CRC-16/XMODEM over "123456789".
        assert_eq!(super::crc16(b"123456789"), 0x31C3);
    }
}
