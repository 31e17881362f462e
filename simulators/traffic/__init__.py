"""The partners' traffic: the hospitals' front desks, the banks' repayment and loan
desks, and the city's app through which firms apply, acting on the hub through
its public API only (they know nothing of its code).

One generator serves both ways of running the hub. Under `credithub up` the
hospitals' stand-in drives it in real time, a weighted random action at a time
(`walk`, paced by `pace`); under `credithub demo` it is driven a step of a
simulated day at a time (`day`), each step at the instant the demo names.

    people       residents: identity numbers, phones, how each repays
    bills        what care costs: holds, bills that add up
    calls        one call to the hub or the credit database, retried safely
    world        what the desks share: residents, visits in progress, the tally
    enrolment    residents sign up, hospitals learn the decisions
    care         a visit: eligibility, holds, the final bill, refunds
    repayments   the banks' desks: residents repay what they owe
    firms        small firms: valid credit codes, what they ask for, how they repay
    lending      applications, the banks' loan desks, payouts, firms' repayments, claims
    walk / day   the two ways of choosing what happens next
    generator    the generator itself; pace: its real-time thread
"""
