import { IMap, INormalizeError, INotify, RazorpayPaginationOptions, PartialOptional } from "./api";
import { Customers } from "./customers";
import { Transfers } from "./transfers";

export declare namespace PaymentLinks {

    interface RazorpayPaymentLinkBaseRequestBody {
        /**
         * Must be set to `true` for creating UPI Payment Link.
         */
        upi_link?: boolean;
        /**
         * Amount to be paid using the Payment Link. Must be in the smallest unit of the currency. 
         * For example, if you want to receive a payment of ₹299.95, you must enter the value 29995.
         */
        amount: number | string;
        /**
         * A three-letter ISO code for the currency in which you want to accept the payment. 
         * For example, `INR`.
         */
        currency?: string;
        /**
         * Indicates whether customers can make partial payments using the Payment Link.
         * 
         * `true`: Customer can make partial payments.
         * 
         * `false` (default): Customer cannot make partial payments.
         */
        accept_partial?: boolean;
        expire_by?: number;
        reference_id?: string;
        /**
         * Minimum amount, in currency subunits, that must be paid by the customer as the first partial payment. 
         * Default value is `100`. Default currency is `INR`. For example, if an amount of ₹7,000 is to be received 
         * from the customer in two installments of #1 - ₹5,000, #2 - ₹2,000, then you can set this value as `500000`. 
         * Must be passed along with accept_partial parameter.
         */
        first_min_partial_amount?: number;
        /**
         * A brief description of the Payment Link. The maximum character limit supported is 2048.
         */
        description?: string;
        /**
         * Customer details
         */
        customer: Pick<Customers.RazorpayCustomerCreateRequestBody, 'name' | 'email' | 'contact'>;
        /**
         * Defines who handles Payment Link notification.
         */
        notify?: {
            /**
             * Defines who handles the email notification.
             */
            email?: boolean;
            /**
             * Defines who handles the SMS notification.
             */
            sms?: boolean;
            whatsapp?: boolean;
        },
        /**
         * Used to send remindersfor the Payment Link.
         */
        reminder_enable?: boolean;
        /**
         * Key-value pair that can be used to store additional information about the entity.
         */
        notes?: IMap<string | number>;
        /**
         * If specified, adds a redirect URL to the Payment Link. Once customers completes the payment, 
         * they are redirected to the specified URL.
         */
        callback_url?: string;
        /**
         * If callback_url parameter is passed, callback_method must be passed with the value `get`.
         */
        callback_method?: string;
    }

    interface RazorpayPaymentLinkCreateRequestBody extends RazorpayPaymentLinkBaseRequestBody { }

    interface RazorpayPaymentLinkUpdateRequestBody extends Pick<RazorpayPaymentLinkBaseRequestBody, 'accept_partial' | 'reference_id' | 'expire_by' | 'notes' | 'reminder_enable'> { }
