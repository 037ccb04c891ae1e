#![no_main]
//! The collector's ingest path before the store: a request body split into items and
//! each normalized and held to the time window. No body may crash it.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let received = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    let window = mozdef::normalize::TimeWindow {
        max_age: Some(chrono::Duration::days(365)),
        max_future: chrono::Duration::hours(24),
    };
    let _ = mozdef::wire::for_each_item(data, 1 << 20, |_, item| {
        if let Ok(value) = item {
            if let Ok(mut event) = mozdef::normalize(value, received) {
                window.hold(&mut event, received);
                let mut line = Vec::new();
                event.write_json_line(&mut line);
                let _: serde_json::Value = serde_json::from_slice(&line).expect("JSON");
            }
        }
        std::ops::ControlFlow::Continue(())
    });
});
