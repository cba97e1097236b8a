"""Stand-ins for the users' own applications - what a trading desk runs and this collection recovers,
but does not ship: an exchange with Binance USD-M futures' REST shape (binance_futures.py) and one with Kraken spot's
(kraken_spot.py: an account-wide dead-man's switch, a cancel-all without instrument), a
strategy trading through ccxt (strategy.py), trading engines and flatten tools (trading_engine.py,
flatten_all.py, flatten_exchange.py), an order router (paper_broker.py), a feed worker
(feed_worker.py), a release (release_app.py) and an inference API (inference_api.py). The sandbox,
the drills, the rehearsals and the tests run them as processes (python <file>), each on loopback;
each file says what it stands for and where it differs from the real thing. They are small on
purpose: the users' own applications take their place on a real platform."""
