//! Receiving UDP datagrams in batches: one `recvmmsg(2)` takes up to [`BATCH`]
//! datagrams, where `recvfrom(2)` takes one (the system call, not the parsing, was half
//! of a datagram's cost).

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams one call takes at most.
pub const BATCH: usize = 32;

/// Room for [`BATCH`] datagrams of up to `slot` bytes each, and their senders.
pub struct Datagrams {
    slot: usize,
    buf: Vec<u8>,
    addresses: Vec<libc::sockaddr_storage>,
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
}

/// One datagram received.
pub struct Datagram<'a> {
    pub bytes: &'a [u8],
    pub sender: Option<SocketAddr>,
    /// Longer than the slot: `bytes` is its start.
    pub truncated: bool,
}

impl Datagrams {
    /// Slots of `slot` bytes (a datagram longer than that is kept cut).
    pub fn new(slot: usize) -> Datagrams {
        Datagrams {
            slot,
            buf: vec![0; slot * BATCH],
            // SAFETY: sockaddr_storage, mmsghdr and iovec are plain C structs for which
            // all zero bytes are a valid value.
            addresses: vec![unsafe { MaybeUninit::zeroed().assume_init() }; BATCH],
            headers: vec![unsafe { MaybeUninit::zeroed().assume_init() }; BATCH],
            iovecs: vec![unsafe { MaybeUninit::zeroed().assume_init() }; BATCH],
        }
    }

    /// Receives what the socket holds, up to [`BATCH`] datagrams, without waiting
    /// (`WouldBlock` when there is none); returns how many.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        // One raw pointer per buffer, taken once: element pointers come from it.
        let base = self.buf.as_mut_ptr();
        let iovecs = self.iovecs.as_mut_ptr();
        let addresses = self.addresses.as_mut_ptr();
        let headers = self.headers.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: i < BATCH, the length of `iovecs`, `addresses` and `headers`;
            // slot i lies within `buf` (BATCH slots of `slot` bytes).
            unsafe {
                *iovecs.add(i) = libc::iovec {
                    iov_base: base.add(i * self.slot).cast(),
                    iov_len: self.slot,
                };
                let header = &mut *headers.add(i);
                header.msg_hdr.msg_name = addresses.add(i).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                header.msg_hdr.msg_iov = iovecs.add(i);
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_control = std::ptr::null_mut();
                header.msg_hdr.msg_controllen = 0;
                header.msg_hdr.msg_flags = 0;
                header.msg_len = 0;
            }
        }
        // SAFETY: BATCH headers, each naming one iovec into `buf` and one
        // sockaddr_storage, all alive for the call.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers,
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(received as usize)
    }

    /// Datagram `i` of the last [`Datagrams::receive`].
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let header = &self.headers[i];
        let len = (header.msg_len as usize).min(self.slot);
        Datagram {
            bytes: &self.buf[i * self.slot..i * self.slot + len],
            sender: socket_addr(&self.addresses[i], header.msg_hdr.msg_namelen),
            truncated: header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        }
    }
}

/// The address a `sockaddr_storage` holds (IPv4 or IPv6).
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_holds_each_datagram_and_its_sender() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(receiver) = UdpSocket::bind(bind) else {
                continue; // no IPv6 here
            };
            let sender = UdpSocket::bind(if bind.starts_with('[') {
                "[::1]:0"
            } else {
                "127.0.0.1:0"
            })
            .unwrap();
            let to = receiver.local_addr().unwrap();
            let mut datagrams = Datagrams::new(16);
            assert_eq!(
                datagrams.receive(receiver.as_raw_fd()).unwrap_err().kind(),
                io::ErrorKind::WouldBlock
            );
            for i in 0..40 {
                sender
                    .send_to(format!("message {i:02}").as_bytes(), to)
                    .unwrap();
            }
            sender
                .send_to(b"a datagram longer than its slot", to)
                .unwrap();
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while got.len() < 41 && std::time::Instant::now() < deadline {
                let n = match datagrams.receive(receiver.as_raw_fd()) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("{e}"),
                };
                assert!(n <= BATCH);
                for i in 0..n {
                    let datagram = datagrams.get(i);
                    assert_eq!(datagram.sender, Some(sender.local_addr().unwrap()));
                    got.push((
                        String::from_utf8_lossy(datagram.bytes).into_owned(),
                        datagram.truncated,
                    ));
                }
            }
            assert_eq!(got.len(), 41, "{bind}");
            assert_eq!(got[0], ("message 00".to_string(), false));
            assert_eq!(got[39], ("message 39".to_string(), false));
            assert_eq!(got[40], ("a datagram longe".to_string(), true));
        }
    }
}
